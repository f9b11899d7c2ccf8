import type { KeyEventBus } from "@latchkey/events";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import type { Database } from "../db/tables.js";
import { storeUsageReport, sweepUsage } from "./usage.repository.js";

/** Options of {@link startUsageIngest}. */
export interface UsageIngestOptions {
  readonly db: Kysely<Database>;
  readonly bus: KeyEventBus;
  readonly logger: Logger;
  /** Minute buckets older than this are deleted (`usageRetentionDays`). */
  readonly retentionMs: number;
  /** Report ids are remembered this long; longer than a report can wait in the stream. */
  readonly dedupeMs: number;
  /** How often the retention sweep runs (`usageSweepMs`). */
  readonly sweepMs: number;
  /** Where `latchkey_token_service_usage_reports_total{result}` goes. */
  readonly registry: Registry;
}

/**
 * Consumes verifiers' usage reports (the bus's shared durable consumer: every
 * replica runs one and they split the work) and stores each in one
 * transaction with its id, then acks it. A report whose transaction fails is
 * not acked and comes back; one already stored is recognised by its id. At
 * least once from the bus plus that check is exactly once in the buckets.
 * Also sweeps buckets and ids past their retention.
 *
 * @returns a function that stops consuming and sweeping.
 */
export async function startUsageIngest(options: UsageIngestOptions): Promise<() => Promise<void>> {
  const { db, logger } = options;
  const reports = new Counter({
    name: "latchkey_token_service_usage_reports_total",
    help: "Usage reports handled: stored, duplicate (already stored: a redelivery) or rejected (unusable)",
    labelNames: ["result"],
    registers: [options.registry],
  });
  for (const result of ["stored", "duplicate", "rejected"]) reports.inc({ result }, 0);
  const consumer = await options.bus.consumeUsage(async ({ messageId, report, deliveryCount }) => {
    const result = await storeUsageReport(db, messageId, report, { retentionMs: options.retentionMs });
    reports.inc({ result: result.kind });
    if (result.kind === "rejected") {
      logger.warn({ verifierId: report.verifierId, reason: result.reason }, "usage report rejected");
    } else if (result.kind === "duplicate") {
      logger.debug({ messageId, deliveryCount }, "usage report already stored");
    } else if (result.rejected > 0) {
      logger.warn({ verifierId: report.verifierId, rejected: result.rejected }, "usage counts left out");
    }
  });
  let sweeping: Promise<void> | undefined;
  const timer = setInterval(() => {
    sweeping ??= sweepUsage(db, { retentionMs: options.retentionMs, dedupeMs: options.dedupeMs })
      .then((deleted) => {
        if (deleted.minutes + deleted.batches > 0) logger.debug(deleted, "usage swept");
      })
      .catch((error) => logger.warn({ err: error }, "usage sweep failed; will retry"))
      .finally(() => {
        sweeping = undefined;
      });
  }, options.sweepMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await consumer.close();
    await sweeping;
  };
}
