import { useEffect, useRef, useState } from "preact/hooks";
import { type Session, signIn } from "../session.js";

/**
 * The sign-in form: one password field for the admin key. The form is never submitted to the
 * server (no action, no GET query with the key): the key goes only into the RPCs' Authorization header.
 */
export function SignInView({
  onSignedIn,
  notice,
}: {
  onSignedIn: (session: Session) => void;
  notice?: string;
}) {
  const [message, setMessage] = useState<string | undefined>(notice);
  const [busy, setBusy] = useState(false);
  const field = useRef<HTMLInputElement>(null);
  useEffect(() => field.current?.focus(), []);
  const submit = async (event: Event) => {
    event.preventDefault();
    const input = field.current;
    if (input === null || busy) return;
    setBusy(true);
    setMessage(undefined);
    const outcome = await signIn(input.value);
    setBusy(false);
    if (outcome.ok) {
      input.value = "";
      onSignedIn(outcome.session);
    } else {
      setMessage(outcome.message);
      input.focus();
    }
  };
  return (
    <main class="sign-in" id="main">
      <form class="panel sign-in-panel" onSubmit={submit} noValidate aria-describedby="sign-in-help">
        <h1>
          <span class="brand-mark" aria-hidden="true" /> Latchkey console
        </h1>
        <p id="sign-in-help">
          Sign in with the root key (<code>npm start</code> prints it) or a team's admin key. The key stays in
          this tab only and is sent to the token-service with each call, nowhere else.
        </p>
        <label for="admin-key">Admin key</label>
        <input
          id="admin-key"
          ref={field}
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          aria-invalid={message !== undefined}
          aria-describedby={message ? "sign-in-error" : undefined}
        />
        {message ? (
          <p id="sign-in-error" class="field-error" role="alert">
            {message}
          </p>
        ) : null}
        <button type="submit" class="button primary" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
