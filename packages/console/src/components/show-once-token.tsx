import { useEffect, useRef, useState } from "preact/hooks";

/**
 * A new token, shown this once: a read-only field, a copy button and the warning that it cannot
 * be shown again. The token lives only in this component's props; "I have stored it" drops it.
 */
export function ShowOnceToken({
  token,
  title,
  onDone,
}: {
  token: string;
  title: string;
  onDone: () => void;
}) {
  const [copied, setCopied] = useState<"no" | "yes" | "failed">("no");
  const field = useRef<HTMLInputElement>(null);
  useEffect(() => field.current?.focus(), []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(token);
      setCopied("yes");
    } catch {
      // No clipboard permission: select it, so Ctrl+C copies it.
      field.current?.select();
      setCopied("failed");
    }
  };
  return (
    <section class="panel token-panel" aria-labelledby="token-title">
      <h3 id="token-title">{title}</h3>
      <p class="warning" role="note">
        Copy this token now. It is shown only once: Latchkey stores only its SHA-256 and cannot show it again.
      </p>
      <div class="token-row">
        <label class="sr-only" for="new-token">
          New token
        </label>
        <input
          id="new-token"
          ref={field}
          class="token"
          readOnly
          value={token}
          spellcheck={false}
          autocomplete="off"
          onFocus={(event) => event.currentTarget.select()}
          data-testid="new-token"
        />
        <button type="button" class="button primary" onClick={copy}>
          Copy
        </button>
      </div>
      <p class="hint" role="status" aria-live="polite">
        {copied === "yes"
          ? "Copied to the clipboard."
          : copied === "failed"
            ? "Selected: press Ctrl+C (⌘C) to copy."
            : ""}
      </p>
      <button type="button" class="button" onClick={onDone}>
        I have stored it
      </button>
    </section>
  );
}
