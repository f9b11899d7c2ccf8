import { type Kysely, sql } from "kysely";
import type { Database } from "../db/tables.js";

/** Bucket sizes of GetUsage, as PostgreSQL's `date_trunc` names them. */
export type UsageUnit = "minute" | "hour" | "day";

/** One bucket and outcome of {@link usageBuckets}. */
export interface UsageRow {
  readonly bucket: Date;
  readonly outcome: number;
  readonly count: number;
}

/**
 * Requests per bucket and outcome for one key or one team in `[start, end)`,
 * oldest first; buckets are UTC.
 *
 * @example
 * ```ts
 * await usageBuckets(db, { keyId: "key_…" }, { unit: "hour", start, end });
 * ```
 */
export async function usageBuckets(
  db: Kysely<Database>,
  subject: { readonly keyId: string } | { readonly teamId: string },
  window: { readonly unit: UsageUnit; readonly start: Date; readonly end: Date },
): Promise<UsageRow[]> {
  const filter = "keyId" in subject ? sql`key_id = ${subject.keyId}` : sql`team_id = ${subject.teamId}`;
  const { rows } = await sql<{ bucket: Date | string; outcome: number; count: string | number }>`
    select date_trunc(${window.unit}, minute, 'UTC') as bucket, outcome, sum(count) as count
    from usage_minutes
    where ${filter} and minute >= ${window.start.toISOString()}::timestamptz
      and minute < ${window.end.toISOString()}::timestamptz
    group by 1, 2
    order by 1, 2
  `.execute(db);
  return rows.map((row) => ({
    bucket: new Date(row.bucket),
    outcome: Number(row.outcome),
    count: Number(row.count),
  }));
}

/**
 * Requests per key since `since`, for a page of keys in one grouped query
 * (List and Get); keys without any are absent from the map.
 *
 * @example
 * ```ts
 * const counts = await requestsSince(db, page.map((row) => row.id), new Date(Date.now() - 86_400_000));
 * ```
 */
export async function requestsSince(
  db: Kysely<Database>,
  keyIds: readonly string[],
  since: Date,
): Promise<Map<string, number>> {
  if (keyIds.length === 0) return new Map();
  const { rows } = await sql<{ key_id: string; count: string | number }>`
    select key_id, sum(count) as count from usage_minutes
    where key_id = any(${[...keyIds]}::text[]) and minute >= ${since.toISOString()}::timestamptz
    group by key_id
  `.execute(db);
  return new Map(rows.map((row) => [row.key_id, Number(row.count)]));
}
