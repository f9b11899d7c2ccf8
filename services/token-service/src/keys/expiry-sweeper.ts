import { KeyEventType } from "@latchkey/proto";
import { type Kysely, sql } from "kysely";
import type { Logger } from "pino";
import type { ApiKeyRow, Database } from "../db/tables.js";
import { enqueueKeyEvent } from "../outbox/outbox.repository.js";

/** Options of {@link startExpirySweeper}. */
export interface ExpirySweeperOptions {
  readonly db: Kysely<Database>;
  readonly logger: Logger;
  /** How often to look for keys that have just expired. */
  readonly intervalMs: number;
  /** Called after keys were announced (evict them locally, wake the publisher). */
  readonly onExpired: (keys: readonly ApiKeyRow[]) => void;
  /** Keys announced per transaction. */
  readonly batchSize?: number;
}

/**
 * Announces expiries: every `intervalMs` it marks keys whose `expires_at` has
 * passed and writes an EXPIRED key event for each, in one transaction, so
 * sidecars can close live connections a key opened. Verification never
 * depends on it (expiry is checked on every Verify and cache entries are
 * clamped to it); the event is for what is already open. Replicas racing on a
 * row serialize on its lock, and the loser's `where not expiry_announced`
 * no longer matches, so each expiry is announced once.
 *
 * @returns a function that stops the sweeper.
 */
export function startExpirySweeper(options: ExpirySweeperOptions): () => Promise<void> {
  const batchSize = options.batchSize ?? 500;
  let running: Promise<void> | undefined;
  let stopped = false;

  async function sweep(): Promise<void> {
    for (;;) {
      const expired = await options.db.transaction().execute(async (trx) => {
        const { rows } = await sql<ApiKeyRow>`
          update api_keys set expiry_announced = true
          where id in (
            select id from api_keys
            where expires_at <= now() and not expiry_announced and revoked_at is null
            order by expires_at
            limit ${batchSize}
            for update skip locked
          )
          returning *
        `.execute(trx);
        for (const row of rows) await enqueueKeyEvent(trx, KeyEventType.EXPIRED, row);
        return rows;
      });
      if (expired.length > 0) {
        options.logger.info({ keys: expired.length }, "key expiries announced");
        options.onExpired(expired);
      }
      if (expired.length < batchSize || stopped) return;
    }
  }

  const timer = setInterval(() => {
    if (running || stopped) return;
    running = sweep()
      .catch((error) => options.logger.warn({ err: error }, "expiry sweep failed; will retry"))
      .finally(() => {
        running = undefined;
      });
  }, options.intervalMs);
  timer.unref();

  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
