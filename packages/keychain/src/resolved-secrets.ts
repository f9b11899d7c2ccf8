import type { KeychainError } from "./keychain-error.js";

/** The secrets a keychain released to one package version, and what it withheld. */
export interface ResolvedSecrets {
  /** The keychain (`kc_…`). */
  readonly keychainId: string;
  /** Released secrets by name (frozen). */
  readonly secrets: Readonly<Record<string, string>>;
  /** Names declared or granted but not released, with the reason (`not_granted`, `not_declared`, `not_stored`). */
  readonly withheld: readonly { readonly name: string; readonly reason: string }[];
}

/** Where an answer came from, for callers and tests. */
export interface ResolveOutcome {
  readonly resolved: ResolvedSecrets;
  /** True when it was served from the cache. */
  readonly cached: boolean;
}

/** A failure kept in flight for the callers that joined one lookup. */
export type ResolveFailure = KeychainError;
