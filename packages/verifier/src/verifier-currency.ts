import type { CacheEntry } from "./cache-entry.js";

/**
 * What a cached entry is good for at a given moment, from the most to the
 * least usable. String constants, so asking allocates nothing on a hit.
 *
 * - `usable`: serve it.
 * - `unvouched`: a VALID answer older than `maxStaleMs` that the event feed
 *   cannot vouch for either: re-verify (bounded staleness), keep it as the
 *   serve-stale-on-error fallback.
 * - `lapsed`: past its lifetime: re-verify, keep it as the fallback.
 * - `key-expired`: the key itself has expired: drop it.
 */
export type EntryState = "usable" | "unvouched" | "lapsed" | "key-expired";

/** Options of {@link createVerifierCurrency}. */
export interface VerifierCurrencyOptions {
  /** How long a VALID answer may be served without a proof of currency younger than this. */
  readonly maxStaleMs: number;
  /**
   * The event feed's proof of currency: a time (ms since the epoch) before
   * which every committed key change has been applied (see
   * `KeyEventFollower.coveredAt`). Left out without an event feed, so VALID
   * answers live only while they are younger than `maxStaleMs`.
   */
  readonly coveredAt?: () => number;
}

/** Decides whether a cached answer may still be served: lifetimes, key expiry and bounded staleness. */
export interface VerifierCurrency {
  /** The state of `entry` at `now` (ms since the epoch). */
  state(entry: CacheEntry, now: number): EntryState;
}

/**
 * Creates the currency rule of a verifier. A cached VALID answer is served
 * only while it is younger than `maxStaleMs`, or while the event feed's proof
 * of currency is: once the feed stops proving itself current (NATS down,
 * cleanly or silently; no token-service able to prove its outbox published),
 * every VALID answer older than `maxStaleMs` is re-verified before use. Negative answers are not subject to it: a stale "no"
 * only delays access.
 *
 * The check runs on every cache hit, so it is comparisons only.
 *
 * @example
 * ```ts
 * const currency = createVerifierCurrency({ maxStaleMs: 2_000, coveredAt: follower.coveredAt });
 * if (currency.state(entry, Date.now()) === "usable") return answerFor(entry, scopes, "hit");
 * ```
 */
export function createVerifierCurrency(options: VerifierCurrencyOptions): VerifierCurrency {
  const { maxStaleMs, coveredAt } = options;

  /** Whether a VALID entry is vouched for: verified recently, or the event feed covers it. */
  function vouched(entry: CacheEntry, now: number): boolean {
    if (now - entry.verifiedAt <= maxStaleMs) return true;
    return coveredAt !== undefined && now - coveredAt() <= maxStaleMs;
  }

  return {
    state(entry, now) {
      if (now >= entry.keyExpiresAt) return "key-expired";
      if (now >= entry.freshUntil) return "lapsed";
      if (entry.code === "VALID" && !vouched(entry, now)) return "unvouched";
      return "usable";
    },
  };
}
