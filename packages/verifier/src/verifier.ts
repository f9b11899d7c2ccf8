import { create } from "@bufbuild/protobuf";
import { type KeyEvent, KeyEventType, VerifyRequestSchema, type VerifyResponse } from "@latchkey/proto";
import { generateToken, MAX_TOKEN_LENGTH, parseToken, randomBase62 } from "@latchkey/token";
import type { Registry } from "prom-client";
import { answerFor, type CacheEntry, createCacheEntry } from "./cache-entry.js";
import { createExpiryWatch } from "./expiry-watch.js";
import { createGrpcJsVerifyClient } from "./grpc-js-verify-client.js";
import { createKeyEventFollower, type KeyEventFollower } from "./key-event-follower.js";
import { createSingleFlight } from "./single-flight.js";
import { createVerifierCache, hashCacheKey, tokenCacheKey } from "./verifier-cache.js";
import { createVerifierMetrics, type VerifierMetrics } from "./verifier-metrics.js";
import type { VerifierOptions, VerifyOptions } from "./verifier-options.js";
import { createConnectVerifyClient, type VerifyClient } from "./verify-client.js";
import type { KeyInvalidation, VerifyOutcome } from "./verify-outcome.js";

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

const MALFORMED: VerifyOutcome = Object.freeze({ ok: false, code: "MALFORMED", cached: false, stale: false });
const NO_SCOPES: readonly string[] = Object.freeze([]);

type FlightResult = { entry: CacheEntry } | { uncached: VerifyOutcome } | { error: unknown };

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

function unavailable(cause: unknown): VerifyOutcome {
  return { ok: false, code: "UNAVAILABLE", cause, cached: false, stale: false };
}

/** Waits for a shared lookup, or for this caller's signal, whichever comes first. */
function abortable(promise: Promise<FlightResult>, signal: AbortSignal | undefined): Promise<FlightResult> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.resolve({ error: signal.reason });
  return new Promise((resolve) => {
    const onAbort = () => resolve({ error: signal.reason });
    signal.addEventListener("abort", onAbort, { once: true });
    void promise.then((result) => {
      signal.removeEventListener("abort", onAbort);
      resolve(result);
    });
  });
}

/**
 * Creates a verifier: Verify over gRPC (grpc-js) or Connect, a cache keyed by
 * the token's SHA-256 and bounded by entries and bytes, single-flight on
 * misses, local rejection of malformed tokens, required scopes checked on
 * every answer, eviction on key events with acks and heartbeats, and bounded
 * staleness when the event feed is cut off.
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
  const lifetimes = { ttlMs: options.ttlMs ?? 60_000, negativeTtlMs: options.negativeTtlMs ?? 5_000 };
  const maxStaleMs = options.maxStaleMs ?? 2_000;
  const serveStaleOnErrorMs = options.serveStaleOnErrorMs ?? 0;
  const timeoutMs = options.timeoutMs ?? 2_000;
  const healthProbeIntervalMs = options.healthProbeIntervalMs ?? 1_000;
  const verifierId = `v_${randomBase62(16)}`;
  const listeners = new Set<(invalidation: KeyInvalidation) => void>();
  const flights = createSingleFlight<FlightResult>();
  let reachable = true;
  let healthTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  const metrics: VerifierMetrics = createVerifierMetrics(options.registry, () => ({
    entries: cache.size,
    bytes: cache.bytes,
  }));
  const cache = createVerifierCache({
    maxEntries: options.maxEntries ?? 10_000,
    maxBytes: options.maxBytes ?? 32 * 1024 * 1024,
    onBoundEviction: () => metrics.evictions.inc({ reason: "lru" }),
  });
  const expiryWatch = createExpiryWatch(cache.expiring, (hash) => {
    const entry = cache.get(hash);
    if (entry !== undefined) expire(entry);
    else cache.delete(hash);
  });

  function notify(invalidation: KeyInvalidation): void {
    for (const listener of listeners) {
      try {
        listener(invalidation);
      } catch (error) {
        options.onError?.(error);
      }
    }
  }

  function applyEvent(event: KeyEvent): void {
    const hash = event.tokenHash.length > 0 ? hashCacheKey(event.tokenHash) : undefined;
    let removed = hash !== undefined && cache.delete(hash) !== undefined ? 1 : 0;
    if (event.keyId !== "") removed += cache.deleteKey(event.keyId);
    if (removed > 0) metrics.evictions.inc({ reason: "event" }, removed);
    flights.invalidate({ ...(hash !== undefined ? { hash } : {}), keyId: event.keyId });
    notify({ keyId: event.keyId, teamId: event.teamId, tokenHash: event.tokenHash, type: event.type });
  }

  function resetCache(): void {
    const removed = cache.clear();
    if (removed > 0) metrics.evictions.inc({ reason: "gap" }, removed);
    flights.invalidate({});
  }

  const follower: KeyEventFollower | undefined =
    options.events === undefined
      ? undefined
      : createKeyEventFollower({
          bus: options.events,
          verifierId,
          label: options.label ?? "",
          ackBatchMs: options.ackBatchMs ?? 2,
          heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1_000,
          retryMs: 250,
          metrics,
          apply: applyEvent,
          reset: resetCache,
          ...(options.onError !== undefined ? { onError: options.onError } : {}),
        });

  /** A key seen to pass its expiry: drop it and tell listeners, as an EXPIRED event would. */
  function expire(entry: CacheEntry): void {
    cache.delete(entry.hash);
    metrics.evictions.inc({ reason: "expiry" });
    flights.invalidate({ hash: entry.hash });
    const key = entry.key;
    if (key !== undefined) {
      notify({
        keyId: key.id,
        teamId: key.teamId,
        tokenHash: Buffer.from(entry.hash, "base64"),
        type: KeyEventType.EXPIRED,
      });
    }
  }

  /** Whether a VALID entry is vouched for: verified recently, or the event feed covers it. */
  function current(entry: CacheEntry, now: number): boolean {
    if (now - entry.verifiedAt <= maxStaleMs) return true;
    return follower !== undefined && now - follower.coveredAt() <= maxStaleMs;
  }

  function markReachable(value: boolean): void {
    reachable = value;
    if (value || closed || healthTimer !== undefined || healthProbeIntervalMs <= 0) return;
    healthTimer = setTimeout(async () => {
      healthTimer = undefined;
      // A random well-formed token: any answer proves the service is back.
      const token = generateToken({ prefix: "lk", environment: "test" });
      try {
        await client.verify(create(VerifyRequestSchema, { token }), { timeoutMs });
        markReachable(true);
      } catch {
        markReachable(false);
      }
    }, healthProbeIntervalMs);
    healthTimer.unref();
  }

  /**
   * One Verify RPC; caches its answer unless a key event arrived for it
   * meanwhile. It asks for an answer at least as fresh as the events applied
   * so far: a token-service replica that has not applied them yet must not
   * answer from its own cache (an event just dropped this key here, and the
   * replica may still hold the row from before it).
   */
  async function lookup(
    token: string,
    hash: string,
    invalidatedSince: (keyId: string | undefined) => boolean,
  ): Promise<FlightResult> {
    const requestedAt = Date.now();
    const started = performance.now();
    const minEventSequence = BigInt(follower?.appliedSequence() ?? 0);
    let response: VerifyResponse;
    try {
      // No required scopes: one answer serves every route; scopes are checked locally.
      response = await client.verify(create(VerifyRequestSchema, { token, minEventSequence }), {
        timeoutMs,
      });
    } catch (error) {
      metrics.rpcDuration.observe({ result: "error" }, (performance.now() - started) / 1000);
      markReachable(false);
      return { error };
    }
    // The service answered, so it is reachable, even if the answer is unusable.
    markReachable(true);
    try {
      const result = createCacheEntry(hash, response, requestedAt, lifetimes);
      const code = "entry" in result ? result.entry.code : result.uncached.code;
      metrics.rpcDuration.observe({ result: code }, (performance.now() - started) / 1000);
      if ("entry" in result) {
        const { entry } = result;
        if (!closed && entry.freshUntil > Date.now() && !invalidatedSince(entry.key?.id)) {
          cache.set(entry);
          expiryWatch.added(entry.keyExpiresAt);
        }
      }
      return result;
    } catch (error) {
      // An answer this verifier cannot read (an unknown result code, VALID without a key): fail closed.
      metrics.rpcDuration.observe({ result: "invalid_answer" }, (performance.now() - started) / 1000);
      options.onError?.(error);
      return { error };
    }
  }

  async function verifyRemote(
    token: string,
    hash: string,
    requiredScopes: readonly string[],
    fallback: CacheEntry | undefined,
    signal: AbortSignal | undefined,
  ): Promise<VerifyOutcome> {
    metrics.misses += 1;
    const flight = flights.run(hash, (invalidatedSince) => lookup(token, hash, invalidatedSince));
    if (flight.joined) metrics.coalesced += 1;
    const result = await abortable(flight.promise, signal);
    if ("entry" in result) return answerFor(result.entry, requiredScopes, "fresh");
    if ("uncached" in result) return result.uncached;
    if (fallback !== undefined && !signal?.aborted && servableStale(fallback, Date.now())) {
      metrics.staleServed += 1;
      return answerFor(fallback, requiredScopes, "stale");
    }
    return unavailable(result.error);
  }

  function servableStale(entry: CacheEntry, now: number): boolean {
    return (
      serveStaleOnErrorMs > 0 && now < entry.freshUntil + serveStaleOnErrorMs && now < entry.keyExpiresAt
    );
  }

  function verifyCached(
    token: string,
    requiredScopes: readonly string[] = NO_SCOPES,
  ): VerifyOutcome | undefined {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return MALFORMED;
    const entry = cache.get(tokenCacheKey(token));
    if (entry === undefined) {
      return parseToken(token, options.prefix).ok ? undefined : MALFORMED;
    }
    const now = Date.now();
    if (now >= entry.freshUntil || (entry.code === "VALID" && !current(entry, now))) return undefined;
    metrics.hits += 1;
    return answerFor(entry, requiredScopes, "hit");
  }

  async function verify(token: string, verifyOptions: VerifyOptions = {}): Promise<VerifyOutcome> {
    try {
      const requiredScopes = verifyOptions.requiredScopes ?? NO_SCOPES;
      if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return MALFORMED;
      if (closed) return unavailable(new Error("verifier is closed"));
      const hash = tokenCacheKey(token);
      const entry = cache.get(hash);
      let fallback: CacheEntry | undefined;
      if (entry !== undefined) {
        const now = Date.now();
        if (now >= entry.keyExpiresAt) {
          expire(entry);
        } else if (now >= entry.freshUntil) {
          fallback = entry;
        } else if (entry.code === "VALID" && !current(entry, now)) {
          metrics.staleReverifications += 1;
          fallback = entry;
        } else {
          metrics.hits += 1;
          return answerFor(entry, requiredScopes, "hit");
        }
      } else if (!parseToken(token, options.prefix).ok) {
        // Only well-formed tokens are ever cached, so this check is needed on a miss alone.
        return MALFORMED;
      }
      return await verifyRemote(token, hash, requiredScopes, fallback, verifyOptions.signal);
    } catch (error) {
      return unavailable(error);
    }
  }

  return {
    id: verifierId,
    metrics: metrics.registry,
    verify,
    verifyCached,
    onInvalidate(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    async ready() {
      await follower?.ready;
    },
    isHealthy() {
      return !closed && reachable;
    },
    status() {
      return {
        verifierId,
        cacheEntries: cache.size,
        cacheBytes: cache.bytes,
        appliedSequence: follower?.appliedSequence() ?? 0,
        eventsConnected: follower?.isConnected() ?? false,
        coveredAt: follower?.coveredAt() ?? Number.NEGATIVE_INFINITY,
        tokenServiceReachable: reachable,
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      if (healthTimer !== undefined) clearTimeout(healthTimer);
      expiryWatch.close();
      await follower?.close();
      if (owned) client.close();
    },
  };
}
