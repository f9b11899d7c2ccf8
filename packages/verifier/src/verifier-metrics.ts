import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Why a cache entry left the cache: the `reason` label of
 * `latchkey_verifier_cache_evictions_total`.
 *
 * @example
 * ```ts
 * metrics.evictions.inc({ reason: "event" satisfies EvictionReason });
 * ```
 */
export type EvictionReason = "lru" | "event" | "gap" | "expiry";

/**
 * The verifier's Prometheus metrics, all named `latchkey_verifier_*`. Counters
 * touched on every request (hits, misses) are plain numbers read at scrape
 * time, so the hot path pays one increment and no label lookup.
 */
export interface VerifierMetrics {
  readonly registry: Registry;
  /** Answers served from the cache. */
  hits: number;
  /** Verifications that needed the token-service (including single-flight joiners). */
  misses: number;
  /** Misses that joined an RPC already in flight for the same token. */
  coalesced: number;
  /** Cached answers re-verified because the event feed could not vouch for them (bounded staleness). */
  staleReverifications: number;
  /** Cached answers served because the token-service could not be reached (serve-stale-on-error). */
  staleServed: number;
  /** UNAVAILABLE answers: no answer from the token-service and nothing usable cached (fail closed). */
  unavailable: number;
  readonly evictions: Counter<"reason">;
  readonly rpcDuration: Histogram<"result">;
  readonly natsConnected: Gauge;
  readonly appliedSequence: Gauge;
  readonly lag: Gauge;
  /** Key event publish (the bus's timestamp) to applied here, one observation per event. */
  readonly revocationLag: Histogram;
}

/** What the scrape-time gauges of {@link createVerifierMetrics} read. */
export interface VerifierMetricsSources {
  /** The cache's size, for the cache gauges. */
  readonly cacheStats: () => { entries: number; bytes: number };
  /** The proof of currency (ms since the epoch; -Infinity before the first), for its age gauge. */
  readonly coveredAt: () => number;
}

const NO_SOURCES: VerifierMetricsSources = {
  cacheStats: () => ({ entries: 0, bytes: 0 }),
  coveredAt: () => Number.NEGATIVE_INFINITY,
};

/**
 * Registers the verifier's metrics on `registry` (a fresh one when left out).
 * `sources` are read at scrape time for the cache size and currency gauges.
 *
 * @example
 * ```ts
 * const metrics = createVerifierMetrics(register, {
 *   cacheStats: () => ({ entries: cache.size, bytes: cache.bytes }),
 *   coveredAt: follower.coveredAt,
 * });
 * metrics.hits++;
 * ```
 */
export function createVerifierMetrics(
  registry: Registry = new Registry(),
  sources: VerifierMetricsSources = NO_SOURCES,
): VerifierMetrics {
  const { cacheStats } = sources;
  const registers = [registry];
  const metrics: VerifierMetrics = {
    registry,
    hits: 0,
    misses: 0,
    coalesced: 0,
    staleReverifications: 0,
    staleServed: 0,
    unavailable: 0,
    evictions: new Counter({
      name: "latchkey_verifier_cache_evictions_total",
      help: "Cache entries dropped, by reason: lru (bounds), event (key event), gap (events lost), expiry (key expired)",
      labelNames: ["reason"],
      registers,
    }),
    rpcDuration: new Histogram({
      name: "latchkey_verifier_verify_rpc_duration_seconds",
      help: "Duration of Verify RPCs to the token-service, by result code (or error)",
      labelNames: ["result"],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    natsConnected: new Gauge({
      name: "latchkey_verifier_nats_connected",
      help: "1 while the key event subscription is connected, 0 otherwise",
      registers,
    }),
    appliedSequence: new Gauge({
      name: "latchkey_verifier_applied_sequence",
      help: "Highest key event stream sequence applied to the cache",
      registers,
    }),
    lag: new Gauge({
      name: "latchkey_verifier_lag_events",
      help: "Key events in the stream not yet applied (the stream's last sequence, as the last outbox currency answer gave it, minus applied)",
      registers,
    }),
    revocationLag: new Histogram({
      name: "latchkey_verifier_revocation_lag_seconds",
      help: "Key event (revocation, disable, scope change, …) published to the stream → applied to this cache; the publish time is the NATS server's clock",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
  };
  new Gauge({
    name: "latchkey_verifier_currency_age_seconds",
    help: "Age of the proof that every committed key change is applied to this cache (+Inf before the first); past maxStaleMs, cached VALID answers are re-verified",
    registers,
    collect() {
      this.set((Date.now() - sources.coveredAt()) / 1000);
    },
  });
  // Each counter reports the running total kept in `metrics` at scrape time.
  const counter = (name: string, help: string, read: () => number) =>
    registerTotalCounter(registry, name, help, read);
  counter("latchkey_verifier_cache_hits_total", "Verifications answered from the cache", () => metrics.hits);
  counter(
    "latchkey_verifier_cache_misses_total",
    "Verifications that needed the token-service",
    () => metrics.misses,
  );
  counter(
    "latchkey_verifier_rpc_coalesced_total",
    "Cache misses that shared an RPC already in flight for the same token",
    () => metrics.coalesced,
  );
  counter(
    "latchkey_verifier_stale_reverifications_total",
    "Cached answers re-verified because the key event feed could not vouch for them (bounded staleness)",
    () => metrics.staleReverifications,
  );
  counter(
    "latchkey_verifier_unavailable_total",
    "Verifications answered UNAVAILABLE: the token-service gave no answer and nothing usable was cached (the caller fails closed)",
    () => metrics.unavailable,
  );
  counter(
    "latchkey_verifier_stale_served_total",
    "Cached answers served while the token-service was unreachable (serve-stale-on-error)",
    () => metrics.staleServed,
  );
  new Gauge({
    name: "latchkey_verifier_cache_entries",
    help: "Entries in the verification cache",
    registers,
    collect() {
      this.set(cacheStats().entries);
    },
  });
  new Gauge({
    name: "latchkey_verifier_cache_bytes",
    help: "Approximate bytes held by the verification cache",
    registers,
    collect() {
      this.set(cacheStats().bytes);
    },
  });
  return metrics;
}

/**
 * A counter whose running total is kept as a plain number and read at scrape
 * time, so the code that counts pays one increment and no label lookup.
 *
 * @example
 * ```ts
 * registerTotalCounter(registry, "latchkey_verifier_cache_hits_total", "Hits", () => metrics.hits);
 * ```
 */
export function registerTotalCounter(
  registry: Registry,
  name: string,
  help: string,
  read: () => number,
): void {
  let reported = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const total = read();
      this.inc(total - reported);
      reported = total;
    },
  });
}
