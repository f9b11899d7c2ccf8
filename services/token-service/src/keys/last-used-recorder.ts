import { type Kysely, sql } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/tables.js";

/**
 * Batches `last_used_at` for the Verify RPC: Verify records use in memory, and
 * one UPDATE per interval writes the newest time of every key used, instead of
 * one write per verification. Uses that never reach the service (verifier cache
 * hits) move `last_used_at` through usage reports (`usage/usage.repository.ts`).
 */
export class LastUsedRecorder {
  readonly #db: Kysely<Database>;
  readonly #logger: Logger;
  // Epoch milliseconds: Verify records a number, no Date per call.
  readonly #pending = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  #flushing: Promise<void> | undefined;

  constructor(db: Kysely<Database>, logger: Logger, flushMs: number) {
    this.#db = db;
    this.#logger = logger;
    this.#timer = setInterval(() => void this.flush(), flushMs);
    this.#timer.unref();
  }

  /** Notes that a key was used now. O(1), no I/O. */
  record(keyId: string, at: number = Date.now()): void {
    this.#pending.set(keyId, at);
  }

  /** Writes what has been recorded. Failures are logged and the entries kept for the next flush. */
  async flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    if (this.#pending.size === 0) return;
    const batch = [...this.#pending];
    this.#pending.clear();
    this.#flushing = this.#write(batch)
      .catch((error) => {
        for (const [id, at] of batch) if (!this.#pending.has(id)) this.#pending.set(id, at);
        this.#logger.warn({ err: error, keys: batch.length }, "last_used_at flush failed; will retry");
      })
      .finally(() => {
        this.#flushing = undefined;
      });
    return this.#flushing;
  }

  async #write(batch: Array<[string, number]>): Promise<void> {
    for (let i = 0; i < batch.length; i += 1000) {
      const chunk = batch.slice(i, i + 1000);
      const values = sql.join(
        chunk.map(([id, at]) => sql`(${id}, ${new Date(at).toISOString()}::timestamptz)`),
      );
      await sql`
        update api_keys set last_used_at = v.at
        from (values ${values}) as v(id, at)
        where api_keys.id = v.id and (api_keys.last_used_at is null or api_keys.last_used_at < v.at)
      `.execute(this.#db);
    }
  }

  /** Stops the timer and writes what is left. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    // flush() hands back a flush already under way, which does not hold what
    // was recorded since it began: wait for it, then write the rest.
    await this.#flushing;
    await this.flush();
  }
}
