import { create } from "@bufbuild/protobuf";
import { VerifyRequestSchema, type VerifyResponse } from "@latchkey/proto";
import {
  type Context,
  context as contextApi,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { answerFor, type CacheEntry, createCacheEntry, type EntryLifetimes } from "./cache-entry.js";
import type { InvalidatedSince, SingleFlight } from "./single-flight.js";
import { createTokenServiceHealth } from "./token-service-health.js";
import type { VerifierMetrics } from "./verifier-metrics.js";
import type { VerifyClient } from "./verify-client.js";
import type { VerifyOutcome } from "./verify-outcome.js";

/**
 * What one Verify RPC yields: an answer to cache, one that must not be cached,
 * or a failure. `metered`: the answer is about a usage-limited key, so it
 * belongs to the one caller whose request took the use.
 */
export type LookupResult =
  | { entry: CacheEntry; metered: boolean }
  | { uncached: VerifyOutcome; metered: boolean }
  | { error: unknown };

// The API's tracer: a no-op until an application registers an OpenTelemetry SDK.
const tracer = trace.getTracer("@latchkey/verifier");
const SPAN_ATTRIBUTES = {
  "rpc.system": "grpc",
  "rpc.service": "latchkey.v1.TokenService",
  "rpc.method": "Verify",
} as const;

/** Tokens of usage-limited keys remembered, so their lookups skip single-flight from the start. */
const MAX_METERED = 10_000;
const NEVER_STORE: InvalidatedSince = () => true;

/** Options of {@link createVerifyLookups}. */
export interface VerifyLookupsOptions {
  readonly client: VerifyClient;
  /** Close `client` on {@link VerifyLookups.close}: the verifier made it. */
  readonly ownsClient: boolean;
  /** Deadline of each Verify RPC. */
  readonly timeoutMs: number;
  /** While the token-service is unreachable, probe it this often. */
  readonly healthProbeIntervalMs: number;
  readonly lifetimes: EntryLifetimes;
  /** Serve a cached answer this long past its lifetime when the token-service is unreachable (0: off). */
  readonly serveStaleOnErrorMs: number;
  /**
   * Sent as `max_staleness_ms`: how stale a proof of currency a token-service
   * replica may answer from its own cache with. Each answer is cached as
   * verified this much before the request, so bounded staleness holds however
   * the replica answered.
   */
  readonly answerStalenessMs: number;
  /** Concurrent lookups of one token, shared with the step that invalidates them. */
  readonly flights: SingleFlight<LookupResult>;
  /** The highest event sequence applied so far, sent as `min_event_sequence` (0 without events). */
  appliedSequence(): number;
  /** Caches an answer the token-service gave. */
  store(entry: CacheEntry): void;
  readonly metrics: VerifierMetrics;
  /** Told about answers this verifier cannot read. */
  readonly onError?: (error: unknown) => void;
}

/** What a miss needs: the token, its cache key, the route's scopes, and what to fall back on. */
export interface LookupRequest {
  readonly token: string;
  /** The token's cache key (base64 SHA-256). */
  readonly hash: string;
  readonly requiredScopes: readonly string[];
  /** The cached entry that was too old to serve, for serve-stale-on-error. */
  readonly fallback: CacheEntry | undefined;
  readonly signal: AbortSignal | undefined;
  /** The parent of the RPC's client span (default: the active context). */
  readonly traceContext?: Context | undefined;
}

/** Cache misses answered by the token-service. */
export interface VerifyLookups {
  /** Asks the token-service (sharing a lookup in flight for the same token); never throws. */
  verify(request: LookupRequest): Promise<VerifyOutcome>;
  /** False while the token-service cannot be reached (the last Verify failed). */
  reachable(): boolean;
  /** Stops caching answers and probing; closes the client when the verifier made it. */
  close(): void;
}

/**
 * The failure outcome: no answer from the token-service and nothing usable cached.
 *
 * @example
 * ```ts
 * if (closed) return unavailable(new Error("verifier is closed"));
 * ```
 */
export function unavailable(cause: unknown): VerifyOutcome {
  return { ok: false, code: "UNAVAILABLE", cause, cached: false, stale: false };
}

/** Waits for a shared lookup, or for this caller's signal, whichever comes first. */
function abortable(promise: Promise<LookupResult>, signal: AbortSignal | undefined): Promise<LookupResult> {
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
 * Creates the verifier's lookups: the Verify RPC (without required scopes, so
 * one answer serves every route, and with `min_event_sequence`), single-flight
 * across concurrent misses, caching unless an invalidation arrived meanwhile,
 * the token-service's reachability, and serve-stale-on-error.
 *
 * @example
 * ```ts
 * const lookups = createVerifyLookups({ client, ownsClient: true, timeoutMs: 2_000,
 *   healthProbeIntervalMs: 1_000, lifetimes, serveStaleOnErrorMs: 0, answerStalenessMs: 1_000, flights,
 *   appliedSequence: () => follower.appliedSequence(), store: (entry) => cache.set(entry), metrics });
 * const outcome = await lookups.verify({ token, hash, requiredScopes, fallback: undefined, signal });
 * ```
 */
export function createVerifyLookups(options: VerifyLookupsOptions): VerifyLookups {
  const { client, timeoutMs, lifetimes, flights, metrics } = options;
  const health = createTokenServiceHealth({
    client,
    timeoutMs,
    probeIntervalMs: options.healthProbeIntervalMs,
  });
  let closed = false;

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
    invalidatedSince: InvalidatedSince,
    parent: Context | undefined,
  ): Promise<LookupResult> {
    // A client span per RPC, its context in the call's metadata (`traceparent`), so the
    // token-service's span continues the caller's trace. Never the token, nor its hash.
    const span = tracer.startSpan(
      "latchkey.v1.TokenService/Verify",
      { kind: SpanKind.CLIENT, attributes: SPAN_ATTRIBUTES },
      parent ?? contextApi.active(),
    );
    const headers: Record<string, string> = {};
    propagation.inject(trace.setSpan(parent ?? contextApi.active(), span), headers);
    try {
      const result = await rpc(token, hash, invalidatedSince, headers);
      if ("error" in result) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: errorName(result.error) });
      } else {
        const outcome = "entry" in result ? result.entry : result.uncached;
        span.setAttribute("latchkey.verify.result", outcome.code);
        const key =
          "entry" in result ? result.entry.key : "key" in result.uncached ? result.uncached.key : undefined;
        if (key !== undefined)
          span.setAttributes({ "latchkey.key_id": key.id, "latchkey.team_id": key.teamId });
      }
      return result;
    } finally {
      span.end();
    }
  }

  async function rpc(
    token: string,
    hash: string,
    invalidatedSince: InvalidatedSince,
    headers: Record<string, string>,
  ): Promise<LookupResult> {
    const requestedAt = Date.now();
    const started = performance.now();
    const minEventSequence = BigInt(options.appliedSequence());
    const maxStalenessMs = options.answerStalenessMs;
    let response: VerifyResponse;
    try {
      // No required scopes: one answer serves every route; scopes are checked locally.
      response = await client.verify(
        create(VerifyRequestSchema, { token, minEventSequence, maxStalenessMs }),
        { timeoutMs, headers },
      );
    } catch (error) {
      metrics.rpcDuration.observe({ result: "error" }, (performance.now() - started) / 1000);
      health.markReachable(false);
      return { error };
    }
    // The service answered, so it is reachable, even if the answer is unusable.
    health.markReachable(true);
    try {
      const result = createCacheEntry(hash, response, requestedAt, lifetimes, maxStalenessMs);
      const code = "entry" in result ? result.entry.code : result.uncached.code;
      metrics.rpcDuration.observe({ result: code }, (performance.now() - started) / 1000);
      if ("entry" in result && !result.metered) {
        const { entry } = result;
        if (!closed && entry.freshUntil > Date.now() && !invalidatedSince(entry.key?.id))
          options.store(entry);
      }
      return result;
    } catch (error) {
      // An answer this verifier cannot read (an unknown result code, VALID without a key): fail closed.
      metrics.rpcDuration.observe({ result: "invalid_answer" }, (performance.now() - started) / 1000);
      options.onError?.(error);
      return { error };
    }
  }

  function servableStale(entry: CacheEntry, now: number): boolean {
    const grace = options.serveStaleOnErrorMs;
    return grace > 0 && now < entry.freshUntil + grace && now < entry.keyExpiresAt;
  }

  /**
   * Tokens seen to belong to usage-limited keys (insertion order, oldest
   * dropped first). Each use of such a key must reach the token-service, so
   * their lookups are never shared: one RPC per request.
   */
  const metered = new Set<string>();
  function noteMetered(hash: string, isMetered: boolean): void {
    if (!isMetered) {
      metered.delete(hash);
      return;
    }
    metered.add(hash);
    if (metered.size > MAX_METERED) metered.delete(metered.values().next().value as string);
  }

  return {
    async verify({ token, hash, requiredScopes, fallback, signal, traceContext }) {
      metrics.misses += 1;
      let result: LookupResult;
      if (metered.has(hash)) {
        result = await abortable(lookup(token, hash, NEVER_STORE, traceContext), signal);
      } else {
        const flight = flights.run(hash, (invalidatedSince) =>
          lookup(token, hash, invalidatedSince, traceContext),
        );
        if (flight.joined) metrics.coalesced += 1;
        result = await abortable(flight.promise, signal);
        // A shared answer about a usage-limited key took one use for the caller that started it:
        // every other caller asks for its own.
        if ("metered" in result && result.metered && flight.joined)
          result = await abortable(lookup(token, hash, NEVER_STORE, traceContext), signal);
      }
      if ("metered" in result) noteMetered(hash, result.metered);
      if ("entry" in result) return answerFor(result.entry, requiredScopes, "fresh");
      if ("uncached" in result) return result.uncached;
      if (fallback !== undefined && !signal?.aborted && servableStale(fallback, Date.now())) {
        metrics.staleServed += 1;
        return answerFor(fallback, requiredScopes, "stale");
      }
      return unavailable(result.error);
    },
    reachable: health.reachable,
    close() {
      closed = true;
      health.close();
      if (options.ownsClient) client.close();
    },
  };
}

/** What a failed RPC's span says about it: the gRPC/Connect code's name, never a message a server wrote. */
function errorName(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" || typeof code === "string" ? `code ${code}` : "error";
}
