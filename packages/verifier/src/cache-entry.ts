import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Key, type VerifyResponse, VerifyResult } from "@latchkey/proto";
import { effectiveScopes, missingScopes } from "@latchkey/token";
import type { VerifiedKey, VerifyCode, VerifyOutcome } from "./verify-outcome.js";

/** Codes a cache entry can hold: the answers that do not depend on the request's scopes. */
export type CachedCode = "VALID" | "MALFORMED" | "NOT_FOUND" | "REVOKED" | "EXPIRED" | "DISABLED";

/** One cached Verify answer, keyed by the token's SHA-256. Frozen once built. */
export interface CacheEntry {
  /** Base64 SHA-256 of the token: the cache key. */
  readonly hash: string;
  readonly code: CachedCode;
  /** The key's public fields, for VALID. */
  readonly key: VerifiedKey | undefined;
  /** The key's scopes plus the ones they imply, for VALID. */
  readonly scopes: ReadonlySet<string>;
  /** When the Verify that produced it was sent (ms since the epoch). */
  readonly verifiedAt: number;
  /** Until when it may be served without asking again (TTL, clamped to the key's expiry). */
  readonly freshUntil: number;
  /** When the key expires (ms since the epoch); Infinity when never. */
  readonly keyExpiresAt: number;
  /** The answer to return on a hit when no scope is missing; built once so a hit allocates nothing. */
  readonly hit: VerifyOutcome;
  /** The same answer for the callers of the RPC that produced it (`cached: false`). */
  readonly fresh: VerifyOutcome;
  /** Approximate bytes, for the cache's byte bound. */
  readonly size: number;
}

/** Lifetimes used by {@link createCacheEntry}. */
export interface EntryLifetimes {
  readonly ttlMs: number;
  readonly negativeTtlMs: number;
}

const NO_SCOPES: ReadonlySet<string> = new Set();
/** Fixed overhead of an entry: the entry, two outcome objects, the LRU node, the index slot. */
const ENTRY_OVERHEAD_BYTES = 600;

const CODES: Partial<Record<VerifyResult, CachedCode>> = {
  [VerifyResult.VALID]: "VALID",
  // We never send required scopes, so the service cannot lack one; a key it returns is a valid key.
  [VerifyResult.INSUFFICIENT_SCOPE]: "VALID",
  [VerifyResult.MALFORMED]: "MALFORMED",
  [VerifyResult.NOT_FOUND]: "NOT_FOUND",
  [VerifyResult.REVOKED]: "REVOKED",
  [VerifyResult.EXPIRED]: "EXPIRED",
  [VerifyResult.DISABLED]: "DISABLED",
};

function toVerifiedKey(key: Key): VerifiedKey {
  return Object.freeze({
    id: key.id,
    teamId: key.teamId,
    name: key.name,
    scopes: Object.freeze([...key.scopes]),
    environment: key.environment,
    expiresAt: key.expireTime === undefined ? undefined : new Date(timestampMs(key.expireTime)),
    metadata: Object.freeze({ ...key.metadata }),
    usageLimit:
      key.usageLimit === undefined
        ? undefined
        : Object.freeze({
            remaining: Number(key.usageLimit.remaining),
            refillsAt:
              key.usageLimit.nextRefillTime === undefined
                ? undefined
                : new Date(timestampMs(key.usageLimit.nextRefillTime)),
          }),
    rateLimits: Object.freeze(
      key.rateLimits.map((limit) =>
        Object.freeze({
          name: limit.name,
          limit: Number(limit.limit),
          windowMs: limit.window === undefined ? 0 : Number(limit.window.seconds) * 1000,
        }),
      ),
    ),
    tier: key.tier === "" ? undefined : key.tier,
  });
}

function sizeOf(hash: string, key: VerifiedKey | undefined): number {
  let size = ENTRY_OVERHEAD_BYTES + hash.length * 2;
  if (key === undefined) return size;
  size += (key.id.length + key.teamId.length + key.name.length + key.environment.length) * 2;
  for (const scope of key.scopes) size += 80 + scope.length * 4; // in the list and in the set
  for (const [name, value] of Object.entries(key.metadata)) size += 40 + (name.length + value.length) * 2;
  return size;
}

/**
 * Turns a Verify response into a cache entry, or into an answer that must not
 * be cached (RATE_LIMITED: it depends on the moment, not the key). An answer
 * for a usage-limited key is `metered`: its entry serves the callers of this
 * RPC only and is never cached, since every use must reach the token-service;
 * USAGE_EXCEEDED is such an answer too. Unknown results throw, so that the
 * caller reports UNAVAILABLE rather than guess.
 *
 * @example
 * ```ts
 * const result = createCacheEntry(hash, response, requestedAt, { ttlMs: 60_000, negativeTtlMs: 5_000 });
 * if ("entry" in result) cache.set(result.entry);
 * ```
 */
export function createCacheEntry(
  hash: string,
  response: VerifyResponse,
  requestedAt: number,
  lifetimes: EntryLifetimes,
): { entry: CacheEntry; metered: boolean } | { uncached: VerifyOutcome; metered: boolean } {
  if (response.result === VerifyResult.RATE_LIMITED) {
    return {
      uncached: Object.freeze({ ok: false, code: "RATE_LIMITED", cached: false, stale: false }),
      metered: false,
    };
  }
  if (response.result === VerifyResult.USAGE_EXCEEDED) {
    if (response.key === undefined) throw new Error("USAGE_EXCEEDED without a key");
    const key = toVerifiedKey(response.key);
    return {
      uncached: Object.freeze({ ok: false, code: "USAGE_EXCEEDED", key, cached: false, stale: false }),
      metered: true,
    };
  }
  const code = CODES[response.result];
  if (code === undefined || (code === "VALID" && response.key === undefined)) {
    throw new Error(`unexpected Verify result ${response.result}`);
  }
  const key = code === "VALID" && response.key !== undefined ? toVerifiedKey(response.key) : undefined;
  const keyExpiresAt = key?.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY;
  const ttl =
    code === "VALID" || code === "REVOKED" || code === "EXPIRED" ? lifetimes.ttlMs : lifetimes.negativeTtlMs;
  const hit = outcome(code, key, true);
  const entry: CacheEntry = Object.freeze({
    hash,
    code,
    key,
    scopes: key === undefined ? NO_SCOPES : effectiveScopes(key.scopes),
    verifiedAt: requestedAt,
    freshUntil: Math.min(requestedAt + ttl, keyExpiresAt),
    keyExpiresAt,
    hit,
    fresh: outcome(code, key, false),
    size: sizeOf(hash, key),
  });
  return { entry, metered: key?.usageLimit !== undefined };
}

function outcome(code: CachedCode, key: VerifiedKey | undefined, cached: boolean): VerifyOutcome {
  if (code === "VALID" && key !== undefined)
    return Object.freeze({ ok: true, code, key, cached, stale: false });
  return Object.freeze({ ok: false, code: code as Exclude<VerifyCode, "VALID">, cached, stale: false });
}

/**
 * The answer an entry gives for a request's scopes: the prebuilt outcome when
 * nothing is missing, INSUFFICIENT_SCOPE with the missing scopes otherwise.
 *
 * @param source which prebuilt outcome to use (`hit` from the cache, `fresh` from an RPC),
 *   or `stale` for serve-stale-on-error.
 * @example
 * ```ts
 * return answerFor(entry, ["write"], "hit");
 * ```
 */
export function answerFor(
  entry: CacheEntry,
  requiredScopes: readonly string[],
  source: "hit" | "fresh" | "stale",
): VerifyOutcome {
  const base = source === "fresh" ? entry.fresh : entry.hit;
  const missing = entry.code === "VALID" ? missingScopes(entry.scopes, requiredScopes) : [];
  if (missing.length === 0) return source === "stale" ? ({ ...base, stale: true } as VerifyOutcome) : base;
  return {
    ok: false,
    code: "INSUFFICIENT_SCOPE",
    key: entry.key,
    missingScopes: missing,
    cached: source !== "fresh",
    stale: source === "stale",
  };
}
