import { setTimeout as sleep } from "node:timers/promises";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/tables.js";
import { sweepAuditBatch } from "./audit.repository.js";

/** Options of {@link createAuditSweeper}. */
export interface AuditSweeperOptions {
  readonly db: Kysely<Database>;
  readonly logger: Logger;
  /** Entries older than this many days are deleted (`auditRetentionDays`). */
  readonly retentionDays: number;
  /** How often a sweep runs (`auditSweepMs`); 0 runs none on a timer (`sweep()` still works). */
  readonly intervalMs: number;
  /** Entries deleted per statement (`auditSweepBatch`). */
  readonly batchSize: number;
  /** Pause between two batches of one sweep, so a large backlog does not hold the database busy (default 50 ms). */
  readonly pauseMs?: number;
  readonly now?: () => number;
}

/** What one sweep deleted. */
export interface AuditSweep {
  readonly deleted: number;
  /** DELETE statements it took. */
  readonly batches: number;
}

/** A running audit-log sweeper. */
export interface AuditSweeper {
  /** Runs one sweep now (or joins the one running). */
  sweep(): Promise<AuditSweep>;
  /** Stops the timer and waits for a running sweep to finish its batch. */
  close(): Promise<void>;
}

/**
 * Ages out the audit log: every `intervalMs`, deletes the entries older than
 * `retentionDays`, `batchSize` at a time, oldest first, pausing between
 * batches, until a batch comes back short. Replicas may sweep at once: each
 * batch skips rows another holds. A failed sweep is logged and retried on the
 * next tick.
 *
 * @example
 * ```ts
 * const sweeper = createAuditSweeper({ db, logger, retentionDays: 365, intervalMs: 60_000, batchSize: 1000 });
 * await sweeper.close();
 * ```
 */
export function createAuditSweeper(options: AuditSweeperOptions): AuditSweeper {
  const { db, logger, batchSize } = options;
  const now = options.now ?? Date.now;
  const pauseMs = options.pauseMs ?? 50;
  let stopped = false;
  let running: Promise<AuditSweep> | undefined;

  async function run(): Promise<AuditSweep> {
    const before = new Date(now() - options.retentionDays * 86_400_000);
    let deleted = 0;
    let batches = 0;
    for (;;) {
      const count = await sweepAuditBatch(db, { before, batchSize });
      deleted += count;
      batches += 1;
      if (count < batchSize || stopped) break;
      await sleep(pauseMs);
    }
    if (deleted > 0) logger.info({ deleted, batches, before: before.toISOString() }, "audit log swept");
    return { deleted, batches };
  }

  const sweep = (): Promise<AuditSweep> => {
    running ??= run().finally(() => {
      running = undefined;
    });
    return running;
  };

  const timer =
    options.intervalMs > 0
      ? setInterval(() => {
          if (running === undefined && !stopped)
            sweep().catch((error: unknown) =>
              logger.warn({ err: error }, "audit log sweep failed; will retry"),
            );
        }, options.intervalMs)
      : undefined;
  timer?.unref();

  return {
    sweep,
    async close() {
      stopped = true;
      if (timer !== undefined) clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
