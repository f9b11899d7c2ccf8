import { create } from "@bufbuild/protobuf";
import { type RateLimitState, RateLimitStateSchema } from "@latchkey/proto";
import { type Kysely, sql } from "kysely";
import type { Database, StoredRateLimit } from "../db/tables.js";

/** The outcome of counting one Verify call against a key's own limits. */
export interface CountedVerify {
  /** False when a limit had no room: nothing was counted then. */
  readonly admitted: boolean;
  readonly states: RateLimitState[];
}

interface Counted {
  previous: number | string | null;
  admitted: number | string | null;
  current: number | string | null;
}

/**
 * Counts a Verify call against each of a key's limits in PostgreSQL, exactly
 * across replicas: per limit one statement that reads the previous fixed
 * window's count, drops windows no estimate needs any more, and increments the
 * current window's row only while `previous × weight + current + 1 ≤ limit`
 * (the same sliding-window counter as the sidecar). The increment's row lock
 * serializes concurrent calls for the key, and one transaction covers every
 * limit, so a call refused by one limit counts against none.
 *
 * @example
 * ```ts
 * const { admitted, states } = await countVerifyCall(db, row.id, row.rate_limits, Date.now());
 * ```
 */
export async function countVerifyCall(
  db: Kysely<Database>,
  keyId: string,
  limits: readonly StoredRateLimit[],
  now: number,
): Promise<CountedVerify> {
  const refused = new Error("refused");
  let rows: Array<{ limit: StoredRateLimit; counted: Counted; index: number; weight: number }> = [];
  try {
    await db.transaction().execute(async (trx) => {
      rows = [];
      for (const limit of limits) {
        const windowMs = limit.windowSeconds * 1000;
        const index = Math.floor(now / windowMs);
        const weight = 1 - (now - index * windowMs) / windowMs;
        const result = await sql<Counted>`
          with prev as (
            select coalesce(
              (select count from rate_limit_counts
                 where key_id = ${keyId} and name = ${limit.name} and window_index = ${index - 1}), 0) as n
          ), cleared as (
            delete from rate_limit_counts
              where key_id = ${keyId} and name = ${limit.name} and window_index < ${index - 1}
          ), up as (
            insert into rate_limit_counts as c (key_id, name, window_index, count)
              select ${keyId}, ${limit.name}, ${index}, 1 from prev
                where prev.n * ${weight}::float8 + 1 <= ${limit.limit}
              on conflict (key_id, name, window_index) do update set count = c.count + 1
                where (select n from prev) * ${weight}::float8 + c.count + 1 <= ${limit.limit}
              returning count
          )
          select (select n from prev) as previous, (select count from up) as admitted,
            (select count from rate_limit_counts
               where key_id = ${keyId} and name = ${limit.name} and window_index = ${index}) as current
        `.execute(trx);
        const counted = result.rows[0] ?? { previous: 0, admitted: null, current: 0 };
        rows.push({ limit, counted, index, weight });
      }
      if (rows.some((row) => row.counted.admitted === null)) throw refused;
    });
  } catch (error) {
    if (error !== refused) throw error;
  }
  const admitted = rows.length > 0 && rows.every((row) => row.counted.admitted !== null);
  const states = rows.map(({ limit, counted, index, weight }) => {
    const previous = Number(counted.previous ?? 0);
    // Refused: nothing was added, so the window holds what it held before.
    const current = Number((admitted ? counted.admitted : counted.current) ?? 0);
    const estimate = previous * weight + current;
    const remaining = Math.max(0, Math.floor(limit.limit - estimate));
    const windowMs = limit.windowSeconds * 1000;
    const resetMs =
      remaining === 0
        ? waitForRoom(previous, current, limit.limit, windowMs, now - index * windowMs)
        : (index + 1) * windowMs - now;
    return create(RateLimitStateSchema, {
      name: limit.name,
      limit: BigInt(limit.limit),
      remaining: BigInt(remaining),
      reset: { seconds: BigInt(Math.ceil(Math.max(0, resetMs) / 1000)), nanos: 0 },
    });
  });
  return { admitted, states };
}

/**
 * Milliseconds until `previous × (1 − f) + current + 1 ≤ limit` holds again,
 * `elapsed` ms into the current window: within it while the current count
 * alone leaves room, else once the next window weighs this one little enough.
 */
function waitForRoom(
  previous: number,
  current: number,
  limit: number,
  windowMs: number,
  elapsed: number,
): number {
  const room = limit - 1;
  if (current <= room) {
    return previous <= 0 ? 0 : (1 - (room - current) / previous) * windowMs - elapsed;
  }
  return windowMs + (room <= 0 ? 1 : 1 - room / current) * windowMs - elapsed;
}
