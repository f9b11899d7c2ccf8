/**
 * A key's environment label (`live`, `test`, `prod`, `staging`, `dev`, …): a
 * lower-case letter, then up to 31 lower-case letters, digits, `_` or `-`.
 * Labels travel upstream as `x-latchkey-environment`, so the set is header-safe
 * and has no case or encoding variants.
 */
export const ENVIRONMENT_PATTERN: RegExp = /^[a-z][a-z0-9_-]{0,31}$/;

/**
 * A key's owner (an external id: a user, an agent): 1–128 characters of
 * `A-Z a-z 0-9 . _ ~ : @ + -`, starting with a letter or digit and not ending
 * in `.`. The set is exactly what a path segment carries unencoded, so an
 * owner compared with a path parameter has one spelling: no `/`, `%`, `;`,
 * whitespace or non-ASCII, and no `.`/`..` or trailing-dot forms that some
 * servers read as another name.
 */
export const OWNER_PATTERN: RegExp = /^[A-Za-z0-9](?:[A-Za-z0-9._~:@+-]{0,126}[A-Za-z0-9_~:@+-])?$/;

/**
 * Whether `value` is a valid environment label ({@link ENVIRONMENT_PATTERN}).
 *
 * @example
 * ```ts
 * isValidEnvironment("staging"); // true
 * isValidEnvironment("Prod"); // false
 * ```
 */
export function isValidEnvironment(value: string): boolean {
  return ENVIRONMENT_PATTERN.test(value);
}

/**
 * Whether `value` is a valid key owner ({@link OWNER_PATTERN}).
 *
 * @example
 * ```ts
 * isValidOwner("agent-42"); // true
 * isValidOwner("a/b"); // false
 * ```
 */
export function isValidOwner(value: string): boolean {
  return OWNER_PATTERN.test(value);
}

/**
 * The environment segment a Latchkey-format token carries for a key's label:
 * `test` for `test`, `live` for every other label. The segment tells a secret
 * scanner whether a leaked token can reach production data; free-form labels
 * (`staging`, `dev`) are the key's data, not part of its token.
 *
 * @example
 * ```ts
 * tokenEnvironment("staging"); // "live"
 * ```
 */
export function tokenEnvironment(label: string): "live" | "test" {
  return label === "test" ? "test" : "live";
}
