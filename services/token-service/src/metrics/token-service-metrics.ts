import { VerifyResult } from "@latchkey/proto";
import { collectDefaultMetrics, Gauge, type Registry } from "prom-client";
import type { CurrencyRoundOutcome } from "../outbox/outbox-currency.js";
import type { CallRecord } from "../server/shared/logging-interceptor.js";
import { type ObserveDuration, registerDurationHistogram } from "./duration-histogram.js";
import { registerScrapedCounter } from "./scraped-counter.js";

/** How a Verify used the row cache. */
export type RowCacheOutcome = "hit" | "miss" | "bypass";

/** The token-service's Prometheus metrics; the hot path only bumps numbers. */
export interface TokenServiceMetrics {
  /** Counts one Verify answer (`latchkey_token_service_verify_total{result}`). */
  verified(result: VerifyResult): void;
  /** Counts one row-cache lookup (`latchkey_token_service_row_cache_lookups_total{outcome}`). */
  rowCache(outcome: RowCacheOutcome): void;
  /** Records a finished RPC on either listener (`latchkey_token_service_rpc_duration_seconds`). */
  rpcFinished(record: CallRecord): void;
  /** Counts one outbox currency round (`latchkey_token_service_outbox_currency_rounds_total{outcome}`). */
  currencyRound(outcome: CurrencyRoundOutcome): void;
}

/** What the scrape-time gauges read. */
export interface TokenServiceMetricsSources {
  /** Pending outbox rows and the creation time of the oldest (a query per scrape). */
  readonly outboxBacklog: () => Promise<{ rows: number; oldest: Date | null }>;
  /** Whether key events reach this replica's row cache. */
  readonly eventsConnected: () => boolean;
  /** Whether this replica's NATS connection is up. */
  readonly busConnected: () => boolean;
  /** Age of the row cache's outbox currency proof, in seconds (Infinity before the first). */
  readonly rowCacheCurrencyAgeSeconds: () => number;
}

const RESULTS = Object.values(VerifyResult).filter(
  (value): value is VerifyResult => typeof value === "number",
);
const OUTCOMES: readonly RowCacheOutcome[] = ["hit", "miss", "bypass"];
const ROUND_OUTCOMES: readonly CurrencyRoundOutcome[] = ["proven", "pending", "failed"];
// gRPC status code names, value for value (Connect's Code enum has the same numbers).
const CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/**
 * Registers the token-service's metrics on `registry`: Verify answers by
 * result, row-cache lookups, RPC latency by procedure and code, the outbox
 * backlog (rows and oldest age, read at scrape time), whether key events
 * arrive and NATS is connected, outbox currency rounds and the row cache's
 * proof of currency, and the Node process defaults.
 *
 * Counters on the Verify path are plain numbers copied into prom-client at
 * scrape time (its own `inc` hashes the label set on every call); the latency
 * histogram keeps one bound series per procedure and code.
 */
export function createTokenServiceMetrics(
  registry: Registry,
  sources: TokenServiceMetricsSources,
): TokenServiceMetrics {
  collectDefaultMetrics({ register: registry });
  const verifyCounts = registerScrapedCounter(registry, {
    name: "latchkey_token_service_verify_total",
    help: "Verify answers by result (VALID, NOT_FOUND, REVOKED, …); invalid requests are counted as RPC errors.",
    labelName: "result",
    keys: RESULTS,
    labelOf: (result) => VerifyResult[result],
  });
  const cacheCounts = registerScrapedCounter(registry, {
    name: "latchkey_token_service_row_cache_lookups_total",
    help: "Verify lookups in the key row cache: hit, miss, or bypass (no proof of currency recent enough, key events cut off, or the caller has applied newer events).",
    labelName: "outcome",
    keys: OUTCOMES,
    labelOf: (outcome) => outcome,
  });
  const duration = registerDurationHistogram(registry, {
    name: "latchkey_token_service_rpc_duration_seconds",
    help: "RPC duration on both listeners, by procedure and gRPC status code.",
    labelNames: ["procedure", "code"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  });
  const children = new Map<string, Map<number, ObserveDuration>>();
  // Read at scrape time: prom-client collects every metric at once, so both
  // gauges share one query per scrape.
  // A database that cannot answer shows as NaN rather than failing the whole scrape.
  let reading: Promise<{ rows: number; ageSeconds: number }> | undefined;
  const readBacklog = () => {
    reading ??= sources
      .outboxBacklog()
      .then(({ rows, oldest }) => ({
        rows,
        ageSeconds: oldest === null ? 0 : Math.max(0, (Date.now() - oldest.getTime()) / 1000),
      }))
      .catch(() => ({ rows: Number.NaN, ageSeconds: Number.NaN }))
      .finally(() => {
        reading = undefined;
      });
    return reading;
  };
  new Gauge({
    name: "latchkey_token_service_outbox_pending_rows",
    help: "Key events written to the outbox and not yet published to the bus.",
    registers: [registry],
    async collect() {
      this.set((await readBacklog()).rows);
    },
  });
  new Gauge({
    name: "latchkey_token_service_outbox_oldest_pending_age_seconds",
    help: "Age of the oldest unpublished outbox row (0 when none): how late revocations are.",
    registers: [registry],
    async collect() {
      this.set((await readBacklog()).ageSeconds);
    },
  });
  new Gauge({
    name: "latchkey_token_service_key_events_connected",
    help: "1 while key events reach this replica (its row cache is used), 0 while it reads through.",
    registers: [registry],
    collect() {
      this.set(sources.eventsConnected() ? 1 : 0);
    },
  });
  const rounds = registerScrapedCounter(registry, {
    name: "latchkey_token_service_outbox_currency_rounds_total",
    help: "Outbox currency rounds: proven (verifiers' questions answered), pending (unpublished rows it cannot prove newer), failed (PostgreSQL or the stream unreachable).",
    labelName: "outcome",
    keys: ROUND_OUTCOMES,
    labelOf: (outcome) => outcome,
  });
  new Gauge({
    name: "latchkey_token_service_row_cache_currency_age_seconds",
    help: "Age of this replica's proof that its row cache reflects every committed key change; above LATCHKEY_VERIFY_CACHE_MAX_STALE_MS, Verify reads PostgreSQL. +Inf before the first proof.",
    registers: [registry],
    collect() {
      this.set(sources.rowCacheCurrencyAgeSeconds());
    },
  });
  new Gauge({
    name: "latchkey_token_service_nats_connected",
    help: "1 while this replica's NATS connection is up (the in-process bus counts as up), 0 otherwise.",
    registers: [registry],
    collect() {
      this.set(sources.busConnected() ? 1 : 0);
    },
  });
  return {
    currencyRound(outcome) {
      rounds[outcome] += 1;
    },
    verified(result) {
      verifyCounts[result] += 1;
    },
    rowCache(outcome) {
      cacheCounts[outcome] += 1;
    },
    rpcFinished(record) {
      let byCode = children.get(record.procedure);
      if (byCode === undefined) {
        byCode = new Map();
        children.set(record.procedure, byCode);
      }
      let child = byCode.get(record.code);
      if (child === undefined) {
        child = duration({
          procedure: record.procedure,
          code: CODE_NAMES[record.code] ?? String(record.code),
        });
        byCode.set(record.code, child);
      }
      child((performance.now() - record.startedAt) / 1000);
    },
  };
}
