import type { KeyEventType } from "@latchkey/proto";

/** The closed set of verification codes, as the Verify RPC returns them. */
export type VerifyCode =
  | "VALID"
  | "MALFORMED"
  | "NOT_FOUND"
  | "REVOKED"
  | "EXPIRED"
  | "DISABLED"
  | "INSUFFICIENT_SCOPE"
  | "RATE_LIMITED"
  | "USAGE_EXCEEDED";

/** The public fields of a verified key that callers act on. */
export interface VerifiedKey {
  readonly id: string;
  readonly teamId: string;
  readonly name: string;
  readonly scopes: readonly string[];
  readonly environment: string;
  /** When the key stops being valid; undefined when it never expires. */
  readonly expiresAt: Date | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * A usage-limited key's budget after this verification; undefined for a key
   * without a limit. Answers for such keys are never cached.
   */
  readonly usageLimit?: VerifiedUsageLimit | undefined;
  /** The key's own rate limits (set at Issue/Update); empty or absent when it has none. */
  readonly rateLimits?: readonly KeyRateLimit[];
  /** The key's trust tier (`verified`, `connected`, …); undefined when it has none. */
  readonly tier?: string | undefined;
  /** The key's owner (an external id: a user, an agent); undefined when it has none. */
  readonly owner?: string | undefined;
  /**
   * Set when the key is a keychain's secret (`kc_…`): it holds no scopes and authenticates the
   * keychain's holder. Callers decide whether they take such keys (the sidecar only on routes with
   * `keychains: true`).
   */
  readonly keychainId?: string | undefined;
}

/** The uses a usage-limited key has left, and when it is topped up. */
export interface VerifiedUsageLimit {
  readonly remaining: number;
  /** The next refill; undefined when the key is never refilled. */
  readonly refillsAt: Date | undefined;
}

/**
 * One of a key's own rate limits: at most `limit` requests per `windowMs`.
 *
 * @example
 * ```ts
 * const hourly: KeyRateLimit = { name: "hourly", limit: 1000, windowMs: 3_600_000 };
 * ```
 */
export interface KeyRateLimit {
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
}

/** Where an answer came from. */
export interface OutcomeSource {
  /** True when the answer came from the local cache. */
  readonly cached: boolean;
  /**
   * True when the token-service could not be reached and the answer was served
   * from cache past its normal lifetime (serve-stale-on-error, off by default).
   */
  readonly stale: boolean;
}

/**
 * The verdict on a token. Never thrown: a key that fails is a value.
 * `UNAVAILABLE` means the verifier could not decide (token-service unreachable
 * and no usable cached answer); callers must fail closed.
 *
 * @example
 * ```ts
 * const outcome = await verifier.verify(token, { requiredScopes: ["write"] });
 * if (outcome.ok) forward(outcome.key.id);
 * else if (outcome.code === "UNAVAILABLE") reply(503);
 * else if (outcome.code === "INSUFFICIENT_SCOPE") reply(403, outcome.missingScopes);
 * else reply(401);
 * ```
 */
export type VerifyOutcome =
  | ({ readonly ok: true; readonly code: "VALID"; readonly key: VerifiedKey } & OutcomeSource)
  | ({
      readonly ok: false;
      readonly code: Exclude<VerifyCode, "VALID">;
      /** Present for INSUFFICIENT_SCOPE and USAGE_EXCEEDED only. */
      readonly key?: VerifiedKey;
      /** Present for INSUFFICIENT_SCOPE only. */
      readonly missingScopes?: readonly string[];
    } & OutcomeSource)
  | {
      readonly ok: false;
      readonly code: "UNAVAILABLE";
      readonly cause: unknown;
      readonly cached: false;
      readonly stale: false;
    };

/**
 * A key that a cache has dropped because of a key event (revoked, disabled, …)
 * or because its expiry passed while cached (type EXPIRED).
 *
 * @example
 * ```ts
 * verifier.onInvalidate((invalidation) => {
 *   if (invalidation.type === KeyEventType.REVOKED) liveStreams.closeAll(invalidation.keyId);
 * });
 * ```
 */
export interface KeyInvalidation {
  readonly keyId: string;
  readonly teamId: string;
  readonly tokenHash: Uint8Array;
  readonly type: KeyEventType;
}
