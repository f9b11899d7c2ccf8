/** Built-in scopes, weakest first; each implies the ones before it. */
export const BUILT_IN_SCOPES = ["read", "write", "admin"] as const;

/** The characters a scope may use: lower-case letters, digits, `:`, `.`, `_`, `-`; 1–64 long. */
export const SCOPE_PATTERN = /^[a-z0-9][a-z0-9:._-]{0,63}$/;

/** Most scopes one key may hold or one request may require. */
export const MAX_SCOPES = 32;

// Each built-in scope with the ones it implies (itself and those before it).
const IMPLIED: ReadonlyMap<string, readonly string[]> = new Map(
  BUILT_IN_SCOPES.map((scope, rank) => [scope, BUILT_IN_SCOPES.slice(0, rank + 1)]),
);

/**
 * The scopes a key effectively holds: its granted scopes plus the ones they
 * imply. Compute it once per key and pass it to {@link missingScopes} on hot
 * paths, so a check is a few `Set.has` calls.
 *
 * @example
 * ```ts
 * effectiveScopes(["write", "chats:read"]); // Set { "write", "read", "chats:read" }
 * ```
 */
export function effectiveScopes(granted: Iterable<string>): ReadonlySet<string> {
  const scopes = new Set<string>();
  for (const scope of granted) {
    const implied = IMPLIED.get(scope);
    if (implied === undefined) scopes.add(scope);
    else for (const each of implied) scopes.add(each);
  }
  return scopes;
}

/**
 * The required scopes that `granted` does not cover, in the order required.
 * `admin` covers `write` and `read`; `write` covers `read`; resource scopes
 * (`chats:write`) match exactly. `granted` may be a list or a set from
 * {@link effectiveScopes}.
 *
 * @example
 * ```ts
 * missingScopes(["write"], ["read", "chats:write"]); // ["chats:write"]
 * ```
 */
export function missingScopes(
  granted: readonly string[] | ReadonlySet<string>,
  required: readonly string[],
): string[] {
  if (required.length === 0) return [];
  const effective = granted instanceof Set ? granted : effectiveScopes(granted as readonly string[]);
  return required.filter((scope) => !effective.has(scope));
}

/**
 * Checks a list of scopes from an untrusted source.
 *
 * @returns an error message naming the bad scope, or undefined when all are valid.
 * @example
 * ```ts
 * scopeListError(["read", "Chats"]); // 'scope "Chats" must match …'
 * ```
 */
export function scopeListError(scopes: readonly string[]): string | undefined {
  if (scopes.length > MAX_SCOPES) return `at most ${MAX_SCOPES} scopes are allowed`;
  for (const scope of scopes) {
    if (!SCOPE_PATTERN.test(scope)) {
      return `scope ${JSON.stringify(scope.slice(0, 80))} must be 1–64 characters of a-z, 0-9, ':', '.', '_', '-'`;
    }
  }
  return undefined;
}
