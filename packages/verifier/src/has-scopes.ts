import { effectiveScopes, missingScopes } from "@latchkey/token";

// The scope rule itself lives in @latchkey/token, shared with the token-service,
// so a cached answer is checked exactly as Verify would check it.
export { effectiveScopes };

/**
 * Whether `granted` satisfies every scope in `required` (`admin` ⊃ `write` ⊃
 * `read`; resource scopes match exactly). Pass a set from
 * {@link effectiveScopes} on hot paths; a plain list is expanded on each call.
 *
 * @example
 * ```ts
 * hasScopes(["admin"], ["read"]); // true
 * hasScopes(["read"], ["write"]); // false
 * hasScopes(effectiveScopes(["chats:write"]), ["chats:write"]); // true
 * ```
 */
export function hasScopes(
  granted: readonly string[] | ReadonlySet<string>,
  required: readonly string[],
): boolean {
  return missingScopes(granted, required).length === 0;
}
