import type { UsageOutcome } from "@latchkey/proto";
import type { KeyInvalidation, VerifyOutcome } from "@latchkey/verifier";
import type { Context } from "@opentelemetry/api";

export type { KeyInvalidation, VerifiedKey, VerifyOutcome } from "@latchkey/verifier";

/** Options of {@link KeyChecker.verify}. */
export interface KeyCheckOptions {
  /** Scopes the key must hold; `read` is implied by `write`, `write` by `admin`. */
  readonly requiredScopes: readonly string[];
  /** Aborts the lookup when the client goes away. */
  readonly signal?: AbortSignal;
  /** The parent of the Verify RPC's client span on a miss (tracing on). */
  readonly traceContext?: Context | undefined;
}

/**
 * What the sidecar needs from a verifier. `@latchkey/verifier`'s `Verifier`
 * satisfies it structurally; the sidecar depends on this shape only, so it can
 * be handed a verifier that shares a process (and an event bus) with the
 * token-service, as `npm start` does.
 */
export interface KeyChecker {
  /** Verifies a token. Never throws: a failing key, or no answer, is an outcome. */
  verify(token: string, options: KeyCheckOptions): Promise<VerifyOutcome>;
  /**
   * The answer from the local cache when there is a fresh one, synchronously;
   * undefined otherwise. The proxy's hit path uses it to skip a promise per request.
   */
  verifyCached?(token: string, requiredScopes: readonly string[]): VerifyOutcome | undefined;
  /** Calls `listener` for every key the verifier drops because of a key event; returns an unsubscribe. */
  onInvalidate(listener: (invalidation: KeyInvalidation) => void): () => void;
  /** Per-key usage: the sidecar records each decided request here (`@latchkey/verifier`'s `usage`). */
  readonly usage?: { record(keyId: string, teamId: string, outcome: UsageOutcome): void };
  /** False when the verifier cannot currently reach the token-service; reported by /readyz and a gauge. */
  isHealthy(): boolean;
}
