/** One `GrantPackage` request, as JSON for `buf curl`. */
export interface GrantRequest {
  readonly keychainId: string;
  readonly packageName: string;
  readonly version: string;
  readonly sha256: string;
  readonly names: readonly string[];
}

/**
 * Turns a keychain configuration in the seed's shape into `GrantPackage` requests, one per
 * package:
 *
 * ```json
 * { "@user/package": { "version": "v-20250101", "sha256": "…", "keys": ["STRIPE_SECRET_KEY"] } }
 * ```
 *
 * @example
 * ```ts
 * for (const request of grantRequests(JSON.parse(text), "kc_…")) await client.grantPackage(request);
 * ```
 * @throws Error naming the package and field at fault.
 */
export function grantRequests(configuration: unknown, keychainId: string): GrantRequest[] {
  if (typeof configuration !== "object" || configuration === null || Array.isArray(configuration)) {
    throw new Error("a keychain configuration is an object of package name → { version, sha256, keys }");
  }
  return Object.entries(configuration).map(([packageName, entry]) => {
    const { version, sha256, keys } = (entry ?? {}) as {
      version?: unknown;
      sha256?: unknown;
      keys?: unknown;
    };
    if (typeof version !== "string") throw new Error(`${packageName}: version must be a string`);
    if (typeof sha256 !== "string") throw new Error(`${packageName}: sha256 must be a string`);
    if (!Array.isArray(keys) || !keys.every((key) => typeof key === "string")) {
      throw new Error(`${packageName}: keys must be a list of names`);
    }
    return { keychainId, packageName, version, sha256, names: keys };
  });
}
