import type { InputHTMLAttributes } from "preact";

/**
 * A label over a text input, the pair every filter row uses; autocomplete is
 * off unless given. Everything but `id` and `label` goes to the input.
 *
 * @example
 * ```tsx
 * <LabeledInput id="audit-key" label="Key" name="audit-key" defaultValue={keyId} placeholder="key_…" />
 * ```
 */
export function LabeledInput({
  id,
  label,
  ...input
}: { id: string; label: string } & InputHTMLAttributes<HTMLInputElement>) {
  return (
    <div>
      <label for={id}>{label}</label>
      <input id={id} autocomplete="off" {...input} />
    </div>
  );
}
