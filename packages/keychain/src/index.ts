/**
 * The keychain SDK for runtimes that host packages: `createKeychainContext` gives package code
 * `context.keychain.key("STRIPE_SECRET_KEY")`, with exactly the secrets the keychain's rules
 * release to that package version and digest, fetched once per invocation through a short
 * bounded cache that drops a keychain's secrets on its key events (revocation, changed secrets
 * or grants). Also: the package digest and the admin requests made from a package folder.
 */

export { type GrantRequest, grantRequests } from "./keychain-configuration.js";
export {
  createKeychainContext,
  type KeychainContext,
  type KeychainContextOptions,
  type PackageKeychain,
} from "./keychain-context.js";
export { KeychainError, type KeychainErrorCode, type RefusalReason } from "./keychain-error.js";
export {
  createKeychainResolver,
  type KeychainResolver,
  type KeychainResolverOptions,
  type KeychainResolverStats,
  MAX_CACHE_TTL_MS,
} from "./keychain-resolver.js";
export { packageDigest } from "./package-digest.js";
export type { PackageIdentity } from "./package-identity.js";
export {
  MANIFEST_FILE,
  type PackageManifest,
  packageVersionRequest,
  readPackageManifest,
} from "./package-manifest.js";
export type { ResolvedSecrets, ResolveOutcome } from "./resolved-secrets.js";
