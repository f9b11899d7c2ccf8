import { UsageOutcome } from "@latchkey/proto";
import { MAX_TOKEN_LENGTH, parseToken, parseTokenWith, randomBase62 } from "@latchkey/token";
import type { Registry } from "prom-client";
import { answerFor, type CacheEntry } from "./cache-entry.js";
import { createGrpcJsVerifyClient } from "./grpc-js-verify-client.js";
import { createKeyEventFollower, type KeyEventFollower } from "./key-event-follower.js";
import { createKeyInvalidator } from "./key-invalidator.js";
import { createSingleFlight } from "./single-flight.js";
import { createUsageRecorder, type UsageRecorder } from "./usage-recorder.js";
import { createVerifierCache, tokenCacheKey } from "./verifier-cache.js";
import { createVerifierCurrency } from "./verifier-currency.js";
import { createVerifierMetrics, type VerifierMetrics } from "./verifier-metrics.js";
import type { VerifierOptions, VerifyOptions } from "./verifier-options.js";
import { createConnectVerifyClient, type VerifyClient } from "./verify-client.js";
import { createVerifyLookups, type LookupResult, unavailable } from "./verify-lookups.js";
import type { KeyInvalidation, VerifyCode, VerifyOutcome } from "./verify-outcome.js";

/**
 * A snapshot of a verifier's state, for admin endpoints and tests.
 *
 * @example
 * ```ts
 * const { appliedSequence, eventsConnected } = verifier.status();
 * ```
 */
export interface VerifierStatus {
  readonly verifierId: string;
  readonly cacheEntries: number;
  readonly cacheBytes: number;
  readonly appliedSequence: number;
  readonly eventsConnected: boolean;
  /** See {@link KeyEventFollower.coveredAt}; -Infinity without a bus or proof yet. */
  readonly coveredAt: number;
  readonly tokenServiceReachable: boolean;
}

/**
 * Verifies API keys against the token-service with a bounded, event-invalidated cache.
 *
 * @example
 * ```ts
 * // Hot path: a synchronous cache hit first, the RPC only on a miss.
 * const outcome = verifier.verifyCached(token, ["read"]) ?? (await verifier.verify(token, { requiredScopes: ["read"] }));
 * const off = verifier.onInvalidate(({ keyId }) => closeStreamsOf(keyId));
 * ```
 */
export interface Verifier {
  /** This instance's id (`v_…`), used in acks and heartbeats. */
  readonly id: string;
  /** The registry holding this verifier's metrics. */
  readonly metrics: Registry;
  /**
   * Per-key usage, reported to the token-service every `usageFlushMs`. With
   * `usageCounting: "verify"` (the default) `verify` and `verifyCached` count
   * every answer that names a key (VALID, INSUFFICIENT_SCOPE); callers record
   * what only they decide (`RATE_LIMITED` by their own limits). With
   * `"caller"` the verifier counts nothing itself and the caller records each
   * request once (the sidecar does, at its decision).
   */
  readonly usage: UsageRecorder;
  /**
   * Verifies a token. Never throws: a failing key is an outcome, and
   * `UNAVAILABLE` (no answer from the token-service and nothing usable cached)
   * means the caller must fail closed.
   */
  verify(token: string, options?: VerifyOptions): Promise<VerifyOutcome>;
  /**
   * The answer from the cache when a fresh one exists (or MALFORMED for a token
   * that fails the local checks), synchronously; undefined when {@link verify}
   * must ask the token-service. The cheap first try of a hot path.
   */
  verifyCached(token: string, requiredScopes?: readonly string[]): VerifyOutcome | undefined;
  /** Calls `listener` for each key event applied and each key seen to expire; returns an unsubscribe. */
  onInvalidate(listener: (invalidation: KeyInvalidation) => void): () => void;
  /** Resolves once the event subscription is up (at once without a bus). */
  ready(): Promise<void>;
  /** False while the token-service cannot be reached (the last Verify failed); drives readiness. */
  isHealthy(): boolean;
  /** A snapshot of the verifier's state. */
  status(): VerifierStatus;
  /** Stops timers, flushes acks and closes the subscription (and a client it created). */
  close(): Promise<void>;
}

/** The usage outcome of each answer that names a key; the others are not counted per key. */
const USAGE_OUTCOME: Partial<Record<VerifyCode, UsageOutcome>> = {
  VALID: UsageOutcome.ALLOWED,
  INSUFFICIENT_SCOPE: UsageOutcome.INSUFFICIENT_SCOPE,
  RATE_LIMITED: UsageOutcome.RATE_LIMITED,
  USAGE_EXCEEDED: UsageOutcome.USAGE_EXCEEDED,
};

const MALFORMED: VerifyOutcome = Object.freeze({ ok: false, code: "MALFORMED", cached: false, stale: false });
const NO_SCOPES: readonly string[] = Object.freeze([]);

function pickClient(options: VerifierOptions): { client: VerifyClient; owned: boolean } {
  const given = [options.tokenService, options.transport, options.client].filter((o) => o !== undefined);
  if (given.length !== 1)
    throw new TypeError("createVerifier needs exactly one of tokenService, transport, client");
  if (options.client !== undefined) return { client: options.client, owned: false };
  if (options.transport !== undefined)
    return { client: createConnectVerifyClient(options.transport), owned: true };
  return {
    client: createGrpcJsVerifyClient({ ...options.grpc, address: options.tokenService ?? "" }),
    owned: true,
  };
}

/**
 * Creates a verifier: Verify over gRPC (grpc-js) or Connect, a cache keyed by
 * the token's SHA-256 and bounded by entries and bytes, single-flight on
 * misses, local rejection of malformed tokens, required scopes checked on
 * every answer, eviction on key events with acks and heartbeats, and bounded
 * staleness when the event feed is cut off.
 *
 * It wires one module per concern: the cache (`verifier-cache.ts`), lookups
 * (`verify-lookups.ts`: single-flight and the Verify RPC), event application
 * (`key-event-follower.ts` feeding `key-invalidator.ts`) and currency
 * (`verifier-currency.ts`: whether a cached answer may still be served).
 *
 * @example
 * ```ts
 * const verifier = createVerifier({
 *   tokenService: "http://token-service:8082",
 *   events: createNatsKeyEventBus({ servers: process.env.NATS_URL! }),
 * });
 * await verifier.ready();
 * const outcome = await verifier.verify(token, { requiredScopes: ["write"] });
 * if (!outcome.ok) return deny(outcome.code); // UNAVAILABLE: fail closed
 * ```
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const { client, owned } = pickClient(options);
  const verifierId = `v_${randomBase62(16)}`;
  const onError = options.onError !== undefined ? { onError: options.onError } : {};
  let closed = false;

  const maxStaleMs = options.maxStaleMs ?? 2_000;
  const metrics: VerifierMetrics = createVerifierMetrics(options.registry, {
    cacheStats: () => ({ entries: cache.size, bytes: cache.bytes }),
    coveredAt: () => follower?.coveredAt() ?? Number.NEGATIVE_INFINITY,
  });
  const cache = createVerifierCache({
    maxEntries: options.maxEntries ?? 10_000,
    maxBytes: options.maxBytes ?? 32 * 1024 * 1024,
    onBoundEviction: () => metrics.evictions.inc({ reason: "lru" }),
  });
  const flights = createSingleFlight<LookupResult>();
  const invalidator = createKeyInvalidator({ cache, flights, metrics, ...onError });
  const follower: KeyEventFollower | undefined =
    options.events === undefined
      ? undefined
      : createKeyEventFollower({
          bus: options.events,
          verifierId,
          label: options.label ?? "",
          ackBatchMs: options.ackBatchMs ?? 2,
          heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1_000,
          // An answer arriving later than this could not vouch for anything anyway.
          currencyTimeoutMs: Math.min(Math.max(maxStaleMs, 500), 10_000),
          retryMs: 250,
          metrics,
          apply: invalidator.apply,
          reset: invalidator.reset,
          ...onError,
        });
  const currency = createVerifierCurrency({
    maxStaleMs,
    ...(follower !== undefined ? { coveredAt: follower.coveredAt } : {}),
  });
  const usage = createUsageRecorder({
    verifierId,
    transport: options.events,
    flushMs: options.usageFlushMs ?? 1_000,
    backlogMax: options.usageBacklogMax ?? 600,
    registry: metrics.registry,
    ...onError,
  });
  const countsUsage = (options.usageCounting ?? "verify") === "verify";
  /** Counts an answer's use of its key when the verifier counts usage itself. */
  function counted(outcome: VerifyOutcome): VerifyOutcome {
    if (outcome.code === "UNAVAILABLE") metrics.unavailable += 1;
    if (countsUsage && outcome.code !== "UNAVAILABLE" && outcome.key !== undefined) {
      const usageOutcome = USAGE_OUTCOME[outcome.code];
      if (usageOutcome !== undefined) usage.record(outcome.key.id, outcome.key.teamId, usageOutcome);
    }
    return outcome;
  }
  const lookups = createVerifyLookups({
    client,
    ownsClient: owned,
    timeoutMs: options.timeoutMs ?? 2_000,
    healthProbeIntervalMs: options.healthProbeIntervalMs ?? 1_000,
    lifetimes: { ttlMs: options.ttlMs ?? 60_000, negativeTtlMs: options.negativeTtlMs ?? 5_000 },
    serveStaleOnErrorMs: options.serveStaleOnErrorMs ?? 0,
    // Half the budget for the replica's proof, half for this cache: an answer a replica gave from
    // its own cache is fresh here for maxStaleMs / 2 (it matters only while the feed cannot vouch).
    answerStalenessMs: Math.floor(maxStaleMs / 2),
    flights,
    appliedSequence: () => follower?.appliedSequence() ?? 0,
    store(entry) {
      cache.set(entry);
      invalidator.cached(entry);
    },
    metrics,
    ...onError,
  });

  // The local checks: every accepted format when configured, else latchkey keys of `prefix`.
  const formats = options.formats;
  const wellFormed = (token: string): boolean =>
    formats !== undefined ? parseTokenWith(formats, token).ok : parseToken(token, options.prefix).ok;

  function verifyCached(
    token: string,
    requiredScopes: readonly string[] = NO_SCOPES,
  ): VerifyOutcome | undefined {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return MALFORMED;
    const entry = cache.get(tokenCacheKey(token));
    if (entry === undefined) {
      return wellFormed(token) ? undefined : MALFORMED;
    }
    if (currency.state(entry, Date.now()) !== "usable") return undefined;
    metrics.hits += 1;
    return counted(answerFor(entry, requiredScopes, "hit"));
  }

  async function verify(token: string, verifyOptions: VerifyOptions = {}): Promise<VerifyOutcome> {
    try {
      const requiredScopes = verifyOptions.requiredScopes ?? NO_SCOPES;
      if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return MALFORMED;
      if (closed) return counted(unavailable(new Error("verifier is closed")));
      const hash = tokenCacheKey(token);
      const entry = cache.get(hash);
      let fallback: CacheEntry | undefined;
      if (entry !== undefined) {
        const state = currency.state(entry, Date.now());
        if (state === "usable") {
          metrics.hits += 1;
          return counted(answerFor(entry, requiredScopes, "hit"));
        }
        if (state === "key-expired") invalidator.expire(entry);
        else fallback = entry;
        if (state === "unvouched") metrics.staleReverifications += 1;
      } else if (!wellFormed(token)) {
        // Only well-formed tokens are ever cached, so this check is needed on a miss alone.
        return MALFORMED;
      }
      return counted(
        await lookups.verify({
          token,
          hash,
          requiredScopes,
          fallback,
          signal: verifyOptions.signal,
          traceContext: verifyOptions.traceContext,
        }),
      );
    } catch (error) {
      return counted(unavailable(error));
    }
  }

  return {
    id: verifierId,
    metrics: metrics.registry,
    usage,
    verify,
    verifyCached,
    onInvalidate: invalidator.onInvalidate,
    async ready() {
      await follower?.ready;
    },
    isHealthy() {
      return !closed && lookups.reachable();
    },
    status() {
      return {
        verifierId,
        cacheEntries: cache.size,
        cacheBytes: cache.bytes,
        appliedSequence: follower?.appliedSequence() ?? 0,
        eventsConnected: follower?.isConnected() ?? false,
        coveredAt: follower?.coveredAt() ?? Number.NEGATIVE_INFINITY,
        tokenServiceReachable: lookups.reachable(),
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      lookups.close();
      invalidator.close();
      // Before the follower: a bus the verifier was given is still open to carry the last batch.
      await usage.close();
      await follower?.close();
    },
  };
}
