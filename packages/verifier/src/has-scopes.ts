import { BUILT_IN_SCOPES } from "@latchkey/token";

/**
 * Each built-in scope implies the ones before it (`admin` ⊃ `write` ⊃ `read`);
 * resource scopes (`chats:write`) imply nothing but themselves. The same rule
 * as `missingScopes` in `@latchkey/token`, which the token-service applies, so
 * a cached answer is checked exactly as Verify would check it.
 */
const IMPLIED: ReadonlyMap<string, readonly string[]> = new Map(
  BUILT_IN_SCOPES.map((scope, rank) => [scope, BUILT_IN_SCOPES.slice(0, rank)]),
);

/**
 * The set of scopes a key effectively holds: its granted scopes plus the ones
 * they imply. The verifier computes it once per cache entry so that a check on
 * a cache hit is a few `Set.has` calls.
 *
 * @example
 * ```ts
 * effectiveScopes(["write", "chats:read"]); // Set { "write", "chats:read", "read" }
 * ```
 */
export function effectiveScopes(granted: Iterable<string>): ReadonlySet<string> {
  const scopes = new Set<string>();
  for (const scope of granted) {
    scopes.add(scope);
    for (const implied of IMPLIED.get(scope) ?? []) scopes.add(implied);
  }
  return scopes;
}

function asEffective(granted: readonly string[] | ReadonlySet<string>): ReadonlySet<string> {
  return Array.isArray(granted) ? effectiveScopes(granted) : (granted as ReadonlySet<string>);
}

/**
 * Whether `granted` satisfies every scope in `required`. Pass a set from
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
  if (required.length === 0) return true;
  const effective = asEffective(granted);
  for (const scope of required) if (!effective.has(scope)) return false;
  return true;
}
