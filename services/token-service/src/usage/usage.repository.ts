import { timestampMs } from "@bufbuild/protobuf/wkt";
import { UsageOutcome, type UsageReport } from "@latchkey/proto";
import { type Kysely, sql } from "kysely";
import type { Database } from "../db/tables.js";
import { isKeyId } from "../ids.js";

const MINUTE_MS = 60_000;
/** A report's minute may lie this far ahead of this replica's clock (verifiers' clocks drift). */
const FUTURE_SLACK_MS = 5 * MINUTE_MS;
/** Most requests one count may claim: far above any real interval, far below bigint trouble. */
const MAX_COUNT = 1_000_000_000;
const VALID_OUTCOMES: ReadonlySet<number> = new Set([
  UsageOutcome.ALLOWED,
  UsageOutcome.INSUFFICIENT_SCOPE,
  UsageOutcome.RATE_LIMITED,
  UsageOutcome.USAGE_EXCEEDED,
]);

/** What storing a report did. */
export type StoreResult =
  | { readonly kind: "stored"; readonly counts: number; readonly rejected: number }
  | { readonly kind: "duplicate" }
  | { readonly kind: "rejected"; readonly reason: string };

/**
 * Stores one verifier report in one transaction: its id in `usage_batches`
 * (a redelivered report finds its id there and changes nothing), one upsert
 * adding its counts to `usage_minutes`, and `last_used_at` moved to the end
 * of its interval for every key it saw used. Reports come from verifiers, so
 * they are checked like any input: a count naming a key that does not exist,
 * a malformed id, an unknown outcome or an absurd count is left out (and
 * counted in `rejected`), and the team is taken from the key's row, never
 * from the report. Rows are written in key order so replicas storing reports
 * for the same keys at once never deadlock.
 *
 * @example
 * ```ts
 * const result = await storeUsageReport(db, "v_abc-42", report, { retentionMs: 35 * 86_400_000 });
 * ```
 */
export async function storeUsageReport(
  db: Kysely<Database>,
  messageId: string,
  report: UsageReport,
  options: { retentionMs: number; now?: number },
): Promise<StoreResult> {
  const now = options.now ?? Date.now();
  if (report.minute === undefined) return { kind: "rejected", reason: "no minute" };
  const minuteMs = timestampMs(report.minute);
  if (minuteMs % MINUTE_MS !== 0) return { kind: "rejected", reason: "minute not on a minute boundary" };
  if (minuteMs > now + FUTURE_SLACK_MS || minuteMs < now - options.retentionMs) {
    return { kind: "rejected", reason: "minute outside the retention window" };
  }
  // The last use is the interval's end, but never later than now nor earlier than its minute.
  const endMs = report.endTime === undefined ? minuteMs : timestampMs(report.endTime);
  const lastUsed = new Date(Math.max(minuteMs, Math.min(endMs, now)));

  const merged = new Map<string, { keyId: string; outcome: number; count: number }>();
  let rejected = 0;
  for (const { keyId, outcome, count } of report.counts) {
    if (!isKeyId(keyId) || !VALID_OUTCOMES.has(outcome) || count < 1 || count > MAX_COUNT) {
      rejected += 1;
      continue;
    }
    const id = `${keyId}/${outcome}`;
    const entry = merged.get(id);
    if (entry === undefined) merged.set(id, { keyId, outcome, count });
    else entry.count += count;
  }
  const rows = [...merged.values()].sort((a, b) =>
    a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : a.outcome - b.outcome,
  );

  return db.transaction().execute(async (trx) => {
    const fresh = await trx
      .insertInto("usage_batches")
      .values({ id: messageId })
      .onConflict((oc) => oc.column("id").doNothing())
      .returning("id")
      .executeTakeFirst();
    if (fresh === undefined) return { kind: "duplicate" } as const;
    if (rows.length === 0) return { kind: "stored", counts: 0, rejected } as const;
    const minute = new Date(minuteMs).toISOString();
    const values = sql.join(rows.map((r) => sql`(${r.keyId}, ${r.outcome}::smallint, ${r.count}::bigint)`));
    const { rows: stored } = await sql<{ key_id: string }>`
      insert into usage_minutes (key_id, minute, outcome, team_id, count)
      select v.key_id, ${minute}::timestamptz, v.outcome, k.team_id, v.count
      from (values ${values}) as v(key_id, outcome, count)
      join api_keys k on k.id = v.key_id
      order by v.key_id, v.outcome
      on conflict (key_id, minute, outcome) do update set count = usage_minutes.count + excluded.count
      returning key_id
    `.execute(trx);
    const used = [...new Set(stored.map((row) => row.key_id))].sort();
    if (used.length > 0) {
      await sql`
        update api_keys set last_used_at = ${lastUsed.toISOString()}::timestamptz
        from (select id from api_keys where id = any(${used}::text[]) order by id for update) as locked
        where api_keys.id = locked.id
          and (api_keys.last_used_at is null or api_keys.last_used_at < ${lastUsed.toISOString()}::timestamptz)
      `.execute(trx);
    }
    return {
      kind: "stored",
      counts: stored.length,
      rejected: rejected + (rows.length - stored.length),
    } as const;
  });
}

/**
 * Deletes minute buckets older than `retentionMs` and report ids older than
 * `dedupeMs` (longer than any report can wait in the stream, so no id a
 * redelivery could carry is forgotten). Returns the rows deleted.
 *
 * @example
 * ```ts
 * await sweepUsage(db, { retentionMs: 35 * 86_400_000, dedupeMs: 2 * 86_400_000 });
 * ```
 */
export async function sweepUsage(
  db: Kysely<Database>,
  options: { retentionMs: number; dedupeMs: number },
): Promise<{ minutes: number; batches: number }> {
  const now = Date.now();
  const minutes = await db
    .deleteFrom("usage_minutes")
    .where("minute", "<", new Date(now - options.retentionMs))
    .executeTakeFirst();
  const batches = await db
    .deleteFrom("usage_batches")
    .where("received_at", "<", new Date(now - options.dedupeMs))
    .executeTakeFirst();
  return { minutes: Number(minutes.numDeletedRows), batches: Number(batches.numDeletedRows) };
}
