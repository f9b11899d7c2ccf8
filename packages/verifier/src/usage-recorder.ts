import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type UsageReportTransport, usageMessageId } from "@latchkey/events";
import {
  type UsageCount,
  UsageCountSchema,
  UsageOutcome,
  type UsageReport,
  UsageReportSchema,
} from "@latchkey/proto";
import { Gauge, type Registry } from "prom-client";
import { registerTotalCounter } from "./verifier-metrics.js";

/**
 * Counts requests per key and outcome, and reports the counts in batches.
 *
 * @example
 * ```ts
 * // After the caller's own decision (a rate limit it applies, say):
 * verifier.usage.record(key.id, key.teamId, UsageOutcome.RATE_LIMITED);
 * ```
 */
export interface UsageRecorder {
  /**
   * Counts one request of `keyId` with `outcome`: a map increment, no I/O and
   * no allocation except for a key's first request in a flush interval.
   * Never blocks and never throws.
   */
  record(keyId: string, teamId: string, outcome: UsageOutcome): void;
  /** Closes the current interval into a batch and publishes the backlog; resolves when that attempt ends. */
  flush(): Promise<void>;
  /** Batches waiting to be published, and what was dropped because the backlog was full. */
  stats(): UsageRecorderStats;
  /** Stops the timer, closes the interval and makes one last attempt to publish. */
  close(): Promise<void>;
}

/** A {@link UsageRecorder}'s counters. */
export interface UsageRecorderStats {
  readonly backlogBatches: number;
  readonly publishedBatches: number;
  readonly droppedBatches: number;
  readonly droppedRequests: number;
  readonly publishFailures: number;
}

/** Options of {@link createUsageRecorder}. */
export interface UsageRecorderOptions {
  /** The verifier's id: reports are `<verifierId>-<sequence>`. */
  readonly verifierId: string;
  /** Where batches go; without one, `record` counts nothing (there is nowhere to report to). */
  readonly transport: UsageReportTransport | undefined;
  /** Interval of batches (the `usageFlushMs` setting). */
  readonly flushMs: number;
  /** Most batches kept while they cannot be published; the oldest is dropped beyond it. */
  readonly backlogMax: number;
  /** Registry for the `latchkey_verifier_usage_*` metrics. */
  readonly registry: Registry;
  readonly onError?: (error: unknown) => void;
}

/** Counts of one key over the current interval, indexed by {@link UsageOutcome}. */
interface KeyCounts {
  readonly teamId: string;
  readonly counts: number[];
}

const OUTCOMES = [
  UsageOutcome.ALLOWED,
  UsageOutcome.INSUFFICIENT_SCOPE,
  UsageOutcome.RATE_LIMITED,
  UsageOutcome.USAGE_EXCEEDED,
] as const;
const OUTCOME_SLOTS = Math.max(...OUTCOMES) + 1;
/** Counts per report: keeps a report far below NATS's default 1 MiB payload limit. */
const MAX_COUNTS_PER_REPORT = 4_096;
const MINUTE_MS = 60_000;

/**
 * Creates a usage recorder: counts in a `Map` per interval; every `flushMs`
 * the interval becomes one report (several for more than 4,096 key/outcome
 * pairs) appended to a bounded backlog, which is published in order, one
 * report at a time, each with the message id `<verifierId>-<sequence>` so a
 * report re-published after a lost ack is counted once. A report that cannot
 * be published stays at the head and is retried next interval; when the
 * backlog holds `backlogMax` reports the oldest is dropped and counted in
 * `latchkey_verifier_usage_dropped_*`. Requests never wait for any of it.
 *
 * @example
 * ```ts
 * const usage = createUsageRecorder({ verifierId, transport: bus, flushMs: 1_000, backlogMax: 600, registry });
 * usage.record("key_…", "team_…", UsageOutcome.ALLOWED);
 * ```
 */
export function createUsageRecorder(options: UsageRecorderOptions): UsageRecorder {
  const { verifierId, transport, backlogMax } = options;
  let current = new Map<string, KeyCounts>();
  let intervalStart = Date.now();
  let sequence = 0n;
  const backlog: UsageReport[] = [];
  let draining: Promise<void> | undefined;
  let closed = false;
  let published = 0;
  let droppedBatches = 0;
  let droppedRequests = 0;
  let failures = 0;

  registerMetrics(options.registry, () => ({
    backlogBatches: backlog.length,
    publishedBatches: published,
    droppedBatches,
    droppedRequests,
    publishFailures: failures,
  }));

  const timer =
    transport === undefined
      ? undefined
      : setInterval(() => {
          void flush();
        }, options.flushMs);
  timer?.unref();

  function record(keyId: string, teamId: string, outcome: UsageOutcome): void {
    if (timer === undefined || outcome <= 0 || outcome >= OUTCOME_SLOTS) return;
    let entry = current.get(keyId);
    if (entry === undefined) {
      entry = { teamId, counts: new Array<number>(OUTCOME_SLOTS).fill(0) };
      current.set(keyId, entry);
    }
    (entry.counts as number[])[outcome] = (entry.counts[outcome] ?? 0) + 1;
  }

  /** Turns the interval's counts into reports on the backlog. */
  function cut(): void {
    const taken = current;
    const minute = timestampFromMs(Math.floor(intervalStart / MINUTE_MS) * MINUTE_MS);
    current = new Map();
    intervalStart = Date.now();
    const endTime = timestampFromMs(intervalStart);
    let counts: UsageCount[] = [];
    const push = () => {
      sequence += 1n;
      backlog.push(create(UsageReportSchema, { verifierId, sequence, minute, counts, endTime }));
      counts = [];
      while (backlog.length > backlogMax) {
        const dropped = backlog.shift() as UsageReport;
        droppedBatches += 1;
        for (const count of dropped.counts) droppedRequests += count.count;
      }
    };
    for (const [keyId, { teamId, counts: byOutcome }] of taken) {
      for (const outcome of OUTCOMES) {
        const count = byOutcome[outcome] ?? 0;
        if (count === 0) continue;
        counts.push(create(UsageCountSchema, { keyId, teamId, outcome, count }));
        if (counts.length === MAX_COUNTS_PER_REPORT) push();
      }
    }
    if (counts.length > 0) push();
  }

  async function drain(): Promise<void> {
    if (transport === undefined) return;
    try {
      while (backlog.length > 0) {
        const report = backlog[0] as UsageReport;
        await transport.publishUsage(report, usageMessageId(report));
        // The backlog may have dropped it meanwhile (full); remove it only if it is still the head.
        if (backlog[0] === report) backlog.shift();
        published += 1;
      }
    } catch (error) {
      failures += 1;
      options.onError?.(error);
    }
  }

  function flush(): Promise<void> {
    cut();
    draining ??= drain().finally(() => {
      draining = undefined;
    });
    return draining;
  }

  return {
    record,
    flush,
    stats: () => ({
      backlogBatches: backlog.length,
      publishedBatches: published,
      droppedBatches,
      droppedRequests,
      publishFailures: failures,
    }),
    async close() {
      if (closed) return;
      closed = true;
      if (timer === undefined) return;
      clearInterval(timer);
      await draining;
      await flush();
    },
  };
}

function registerMetrics(registry: Registry, read: () => UsageRecorderStats): void {
  const registers = [registry];
  new Gauge({
    name: "latchkey_verifier_usage_backlog_batches",
    help: "Usage reports waiting to be published (NATS unreachable or slow)",
    registers,
    collect() {
      this.set(read().backlogBatches);
    },
  });
  const counter = (name: string, help: string, pick: (stats: UsageRecorderStats) => number) =>
    registerTotalCounter(registry, name, help, () => pick(read()));
  counter(
    "latchkey_verifier_usage_published_batches_total",
    "Usage reports accepted by JetStream",
    (s) => s.publishedBatches,
  );
  counter(
    "latchkey_verifier_usage_publish_failures_total",
    "Attempts to publish the usage backlog that failed (retried next interval)",
    (s) => s.publishFailures,
  );
  counter(
    "latchkey_verifier_usage_dropped_batches_total",
    "Usage reports dropped, oldest first, because the backlog was full (usageBacklogMax)",
    (s) => s.droppedBatches,
  );
  counter(
    "latchkey_verifier_usage_dropped_requests_total",
    "Requests whose counts were in dropped usage reports",
    (s) => s.droppedRequests,
  );
}
