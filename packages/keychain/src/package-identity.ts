/**
 * Which package a runtime is running: its name, version and the SHA-256 of the contents it runs
 * (64 hex digits, or `sha256:<hex>`: on Kubernetes, the image digest). The keychain's grant pins
 * the version and digest; another version or digest gets nothing.
 *
 * @example
 * ```ts
 * const pkg: PackageIdentity = { name: "@user/package", version: "v-20250101", sha256: await packageDigest(dir) };
 * ```
 */
export interface PackageIdentity {
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
}
