import { KeychainError } from "./keychain-error.js";
import type { KeychainResolver } from "./keychain-resolver.js";
import type { PackageIdentity } from "./package-identity.js";

/** What package code reads its secrets through: `context.keychain.key("STRIPE_SECRET_KEY")`. */
export interface PackageKeychain {
  /**
   * The secret `name`, released to this package by the keychain's rules.
   *
   * @throws KeychainError `not_released` when the package does not declare it, or the keychain
   *   does not grant or store it (the message says which, never a value).
   */
  key(name: string): string;
  /** Whether `name` was released. */
  has(name: string): boolean;
  /** The released names, sorted. */
  readonly names: readonly string[];
  /** The keychain the secrets came from (`kc_…`). */
  readonly id: string;
}

/** The context argument of a package's function (`export default async function (context) {…}`). */
export interface KeychainContext {
  readonly keychain: PackageKeychain;
}

/** Options of {@link createKeychainContext}. */
export interface KeychainContextOptions {
  /** The runtime's resolver (one per process, {@link createKeychainResolver}). */
  readonly resolver: KeychainResolver;
  /** The keychain secret the caller presented (the request's Bearer credential). */
  readonly secret: string;
  /** The package being invoked: name, version, digest of what runs. */
  readonly package: PackageIdentity;
  /** Cancels the ResolveSecrets call (the client went away). */
  readonly signal?: AbortSignal;
}

/**
 * Builds the context for one invocation of a package: fetches the secrets the keychain releases
 * to this package once (or takes them from the resolver's short cache), then answers
 * `context.keychain.key(name)` synchronously, as package code expects. The keychain secret itself
 * is not in the context: package code cannot present it anywhere.
 *
 * @example
 * ```ts
 * const context = await createKeychainContext({ resolver, secret: bearer, package: pkg });
 * const result = await packageMain(context); // context.keychain.key("STRIPE_SECRET_KEY")
 * ```
 * @throws KeychainError when the keychain releases nothing to the package (`refused`, with the
 *   rule's reason), the secret is not a keychain's (`unauthenticated`), or the service is
 *   unreachable (`unavailable`).
 */
export async function createKeychainContext(options: KeychainContextOptions): Promise<KeychainContext> {
  const { resolved } = await options.resolver.resolve(
    options.secret,
    options.package,
    options.signal ? { signal: options.signal } : {},
  );
  const withheld = new Map(resolved.withheld.map((each) => [each.name, each.reason]));
  const packageName = options.package.name;
  const names = Object.freeze(Object.keys(resolved.secrets).sort());
  const keychain: PackageKeychain = Object.freeze({
    id: resolved.keychainId,
    names,
    has: (name: string) => Object.hasOwn(resolved.secrets, name),
    key(name: string): string {
      if (Object.hasOwn(resolved.secrets, name)) return resolved.secrets[name] as string;
      const why = withheld.get(name);
      const explanation =
        why === "not_granted"
          ? "the keychain does not grant it to this package"
          : why === "not_declared"
            ? "the package does not declare it in keychain.required"
            : why === "not_stored"
              ? "the keychain stores no secret of that name"
              : "the package does not declare it and the keychain does not grant it";
      throw new KeychainError(
        "not_released",
        `keychain secret ${JSON.stringify(String(name).slice(0, 128))} was not released to ${packageName}: ${explanation}`,
      );
    },
  });
  return Object.freeze({ keychain });
}
