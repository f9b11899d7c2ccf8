/** Built-in scopes, weakest first; each implies the ones before it. */
export const BUILT_IN_SCOPES = ["read", "write", "admin"] as const;

/** The characters a scope may use: lower-case letters, digits, `:`, `.`, `_`, `-`; 1–64 long. */
export const SCOPE_PATTERN = /^[a-z0-9][a-z0-9:._-]{0,63}$/;

/** Most scopes one key may hold or one request may require. */
export const MAX_SCOPES = 32;

const RANK: Readonly<Record<string, number>> = { read: 1, write: 2, admin: 3 };

/**
 * The required scopes that `granted` does not cover, in the order required.
 * `admin` covers `write` and `read`; `write` covers `read`; resource scopes
 * (`chats:write`) match exactly.
 *
 * @example
 * ```ts
 * missingScopes(["write"], ["read", "chats:write"]); // ["chats:write"]
 * ```
 */
export function missingScopes(granted: readonly string[], required: readonly string[]): string[] {
  if (required.length === 0) return [];
  let rank = 0;
  for (const scope of granted) rank = Math.max(rank, RANK[scope] ?? 0);
  const missing: string[] = [];
  for (const scope of required) {
    const needed = RANK[scope];
    if (needed !== undefined ? rank < needed : !granted.includes(scope)) missing.push(scope);
  }
  return missing;
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
