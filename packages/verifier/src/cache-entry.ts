import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Key, type VerifyResponse, VerifyResult } from "@latchkey/proto";
import { effectiveScopes, missingScopes } from "@latchkey/token";
import type { KeyRateLimit, VerifiedKey, VerifyCode, VerifyOutcome } from "./verify-outcome.js";

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
  /**
   * The moment (ms since the epoch) the answer is known to be current from:
   * when the Verify that produced it was sent, less the staleness the
   * token-service was allowed to answer from its own cache (`max_staleness_ms`).
   */
  readonly verifiedAt: number;
  /** Until when it may be served without asking again (TTL, clamped to the key's expiry). */
  readonly freshUntil: number;
  /** When the key expires (ms since the epoch); Infinity when never. */
  readonly keyExpiresAt: number;
  /** The answer to return on a hit when no scope is missing; built once so a hit allocates nothing. */
  readonly hit: VerifyOutcome;
}

/** Lifetimes used by {@link createCacheEntry}. */
export interface EntryLifetimes {
  readonly ttlMs: number;
  readonly negativeTtlMs: number;
}

const NO_SCOPES: ReadonlySet<string> = new Set();
const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});
const NO_RATE_LIMITS: readonly KeyRateLimit[] = Object.freeze([]);
/**
 * Fixed overhead of an entry, as measured by `npm run bench:cache-memory`: the entry and its three
 * timestamps, the outcome object, the key object, the LRU slot and the key-id index slot.
 */
const ENTRY_OVERHEAD_BYTES = 420;

/**
 * Scope lists and their effective sets, shared by every key with the same scopes: most keys share a
 * few lists, and a Set per entry cost more than the rest of the entry. Bounded, so that hostile
 * variety cannot grow it; past the bound, entries get their own.
 */
const sharedScopes = new Map<string, { list: readonly string[]; effective: ReadonlySet<string> }>();
const MAX_SHARED_SCOPE_LISTS = 1_024;

function scopesOf(scopes: readonly string[]): { list: readonly string[]; effective: ReadonlySet<string> } {
  const name = scopes.join(" ");
  let shared = sharedScopes.get(name);
  if (shared === undefined) {
    shared = { list: Object.freeze([...scopes]), effective: effectiveScopes(scopes) };
    if (sharedScopes.size < MAX_SHARED_SCOPE_LISTS) sharedScopes.set(name, shared);
  }
  return shared;
}

/** The environments a key has, as one string each rather than one per decoded response. */
function environmentOf(environment: string): string {
  return environment === "live" ? "live" : environment === "test" ? "test" : environment;
}

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

function toVerifiedKey(key: Key, scopes: readonly string[]): VerifiedKey {
  return Object.freeze({
    id: key.id,
    teamId: key.teamId,
    name: key.name,
    scopes,
    environment: environmentOf(key.environment),
    expiresAt: key.expireTime === undefined ? undefined : new Date(timestampMs(key.expireTime)),
    metadata: isEmpty(key.metadata) ? NO_METADATA : Object.freeze({ ...key.metadata }),
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
    rateLimits:
      key.rateLimits.length === 0
        ? NO_RATE_LIMITS
        : Object.freeze(
            key.rateLimits.map((limit) =>
              Object.freeze({
                name: limit.name,
                limit: Number(limit.limit),
                windowMs: limit.window === undefined ? 0 : Number(limit.window.seconds) * 1000,
              }),
            ),
          ),
    tier: key.tier === "" ? undefined : key.tier,
    owner: key.owner === "" ? undefined : key.owner,
    keychainId: key.keychainId === "" ? undefined : key.keychainId,
  });
}

function isEmpty(record: Readonly<Record<string, string>>): boolean {
  for (const _ in record) return false;
  return true;
}

/** Approximate bytes of an entry, for the cache's byte bound (shared scope lists count in full). */
export function entrySize(entry: CacheEntry): number {
  return sizeOf(entry.hash, entry.key);
}

function sizeOf(hash: string, key: VerifiedKey | undefined): number {
  // Ids, hashes and environments are ASCII (one byte a character in V8); a name may not be.
  let size = ENTRY_OVERHEAD_BYTES + hash.length;
  if (key === undefined) return size;
  size += key.id.length + key.teamId.length + key.name.length * 2 + key.environment.length;
  size += (key.owner?.length ?? 0) + (key.keychainId?.length ?? 0);
  size += key.scopes.length * 8; // the list and its set are shared between keys with the same scopes
  for (const [name, value] of Object.entries(key.metadata)) size += 80 + (name.length + value.length) * 2;
  // A key's own rate limits: a frozen object each (name, limit, window), none shared.
  size += (key.rateLimits?.length ?? 0) * (96 + 2 * 32);
  return size;
}

/**
 * Turns a Verify response into a cache entry, or into an answer that must not
 * be cached (RATE_LIMITED: it depends on the moment, not the key). An answer
 * for a usage-limited key is `metered`: its entry serves the callers of this
 * RPC only and is never cached, since every use must reach the token-service;
 * USAGE_EXCEEDED is such an answer too. Unknown results throw, so that the
 * caller reports UNAVAILABLE rather than guess. `answerStalenessMs` is the
 * `max_staleness_ms` the request allowed the token-service: the entry counts
 * as verified that much before `requestedAt`.
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
  answerStalenessMs = 0,
): { entry: CacheEntry; metered: boolean } | { uncached: VerifyOutcome; metered: boolean } {
  if (response.result === VerifyResult.RATE_LIMITED) {
    return {
      uncached: Object.freeze({ ok: false, code: "RATE_LIMITED", cached: false, stale: false }),
      metered: false,
    };
  }
  if (response.result === VerifyResult.USAGE_EXCEEDED) {
    if (response.key === undefined) throw new Error("USAGE_EXCEEDED without a key");
    const key = toVerifiedKey(response.key, scopesOf(response.key.scopes).list);
    return {
      uncached: Object.freeze({ ok: false, code: "USAGE_EXCEEDED", key, cached: false, stale: false }),
      metered: true,
    };
  }
  const code = CODES[response.result];
  if (code === undefined || (code === "VALID" && response.key === undefined)) {
    throw new Error(`unexpected Verify result ${response.result}`);
  }
  const scopes = code === "VALID" && response.key !== undefined ? scopesOf(response.key.scopes) : undefined;
  const key =
    scopes !== undefined && response.key !== undefined ? toVerifiedKey(response.key, scopes.list) : undefined;
  const keyExpiresAt = key?.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY;
  const ttl =
    code === "VALID" || code === "REVOKED" || code === "EXPIRED" ? lifetimes.ttlMs : lifetimes.negativeTtlMs;
  const hit = hitOutcome(code, key);
  const entry: CacheEntry = Object.freeze({
    hash,
    code,
    key,
    scopes: scopes === undefined ? NO_SCOPES : scopes.effective,
    verifiedAt: requestedAt - answerStalenessMs,
    freshUntil: Math.min(requestedAt + ttl, keyExpiresAt),
    keyExpiresAt,
    hit,
  });
  return { entry, metered: key?.usageLimit !== undefined };
}

const NONE_MISSING: readonly string[] = Object.freeze([]);

/** Whether `scopes` holds every required one: the common answer, found without making an array. */
function grantsAll(scopes: ReadonlySet<string>, required: readonly string[]): boolean {
  for (let i = 0; i < required.length; i++) if (!scopes.has(required[i] as string)) return false;
  return true;
}

/** The answer a cache hit returns. */
function hitOutcome(code: CachedCode, key: VerifiedKey | undefined): VerifyOutcome {
  if (code === "VALID" && key !== undefined)
    return Object.freeze({ ok: true, code, key, cached: true, stale: false });
  return Object.freeze({ ok: false, code: code as Exclude<VerifyCode, "VALID">, cached: true, stale: false });
}

/**
 * The answer an entry gives for a request's scopes: the prebuilt outcome when
 * nothing is missing, INSUFFICIENT_SCOPE with the missing scopes otherwise.
 *
 * @param source `hit` from the cache (the prebuilt answer, nothing allocated), `fresh` for the
 *   callers of the RPC that filled it (`cached: false`), `stale` for serve-stale-on-error.
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
  const missing =
    entry.code === "VALID" && !grantsAll(entry.scopes, requiredScopes)
      ? missingScopes(entry.scopes, requiredScopes)
      : NONE_MISSING;
  if (missing.length === 0) {
    // Only a hit, the path every request takes, returns the prebuilt answer; the RPC's callers
    // (once per miss) and serve-stale get a copy.
    if (source === "hit") return entry.hit;
    return Object.freeze({
      ...entry.hit,
      cached: source === "stale",
      stale: source === "stale",
    }) as VerifyOutcome;
  }
  return {
    ok: false,
    code: "INSUFFICIENT_SCOPE",
    key: entry.key,
    missingScopes: missing,
    cached: source !== "fresh",
    stale: source === "stale",
  };
}
