/**
 * One character as percent-encoded UTF-8 (`é` → `%C3%A9`), upper-case hex as
 * RFC 3986 §2.1 recommends: how the forwarded path and header-safe identity
 * values encode what they cannot carry raw.
 *
 * @example
 * ```ts
 * percentEncodeChar("é"); // "%C3%A9"
 * ```
 */
export function percentEncodeChar(char: string): string {
  let out = "";
  for (const byte of Buffer.from(char, "utf8"))
    out += `%${byte < 16 ? "0" : ""}${byte.toString(16).toUpperCase()}`;
  return out;
}
