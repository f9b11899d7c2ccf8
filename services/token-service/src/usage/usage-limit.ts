import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type UsageLimit, UsageLimitSchema, UsageRefillInterval } from "@latchkey/proto";
import { type Kysely, sql } from "kysely";
import type { ApiKeyRow, Database } from "../db/tables.js";
import { invalidArgument, rejectUnknownFields } from "../rpc/validate.js";

const MAX_USES = 1_000_000_000_000;

/** The columns of a usage limit, as Issue and Update write them. */
export interface UsageLimitColumns {
  remaining: number | null;
  refill_interval: "day" | "month" | null;
  refill_amount: number | null;
  refilled_at: Date | null;
}

/** The columns that remove a usage limit. */
export const NO_USAGE_LIMIT: Readonly<UsageLimitColumns> = Object.freeze({
  remaining: null,
  refill_interval: null,
  refill_amount: null,
  refilled_at: null,
});

const INTERVALS: Partial<Record<UsageRefillInterval, "day" | "month">> = {
  [UsageRefillInterval.DAILY]: "day",
  [UsageRefillInterval.MONTHLY]: "month",
};

/**
 * Checks a requested usage limit and turns it into columns: `remaining` 0 to
 * 10^12; a refill interval DAILY or MONTHLY with an amount 1 to 10^12, or no
 * interval and no amount. The refill clock starts at the current UTC day or
 * month.
 *
 * @throws ConnectError INVALID_ARGUMENT naming the field.
 */
export function requireUsageLimit(limit: UsageLimit, field: string, now = new Date()): UsageLimitColumns {
  rejectUnknownFields(limit, field);
  const remaining = limit.remaining;
  if (remaining < 0n || remaining > BigInt(MAX_USES)) {
    throw invalidArgument(`${field}.remaining`, `must be between 0 and ${MAX_USES}`);
  }
  if (limit.refillInterval === UsageRefillInterval.UNSPECIFIED) {
    if (limit.refillAmount !== 0n) {
      throw invalidArgument(`${field}.refill_amount`, "needs a refill_interval (DAILY or MONTHLY)");
    }
    return { remaining: Number(remaining), refill_interval: null, refill_amount: null, refilled_at: null };
  }
  const interval = INTERVALS[limit.refillInterval];
  if (interval === undefined) throw invalidArgument(`${field}.refill_interval`, "must be DAILY or MONTHLY");
  if (limit.refillAmount < 1n || limit.refillAmount > BigInt(MAX_USES)) {
    throw invalidArgument(`${field}.refill_amount`, `must be between 1 and ${MAX_USES}`);
  }
  return {
    remaining: Number(remaining),
    refill_interval: interval,
    refill_amount: Number(limit.refillAmount),
    refilled_at: periodStart(interval, now.getTime()),
  };
}

/** The start of the UTC day or month holding `ms`. */
function periodStart(interval: "day" | "month", ms: number): Date {
  const at = new Date(ms);
  return interval === "day"
    ? new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()))
    : new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
}

/** The start of the UTC day or month after the one holding `ms`. */
function nextPeriod(interval: "day" | "month", ms: number): number {
  const at = new Date(ms);
  return interval === "day"
    ? Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate() + 1)
    : Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1);
}

/**
 * A row's usage limit as the API shows it, with `remaining` given when it is
 * fresher than the row (the answer of a Verify that just took a use); undefined
 * for a key without a limit.
 */
export function usageLimitOf(
  row: Pick<ApiKeyRow, "remaining" | "refill_interval" | "refill_amount">,
  remaining: number | undefined = undefined,
  now = Date.now(),
): UsageLimit | undefined {
  if (row.remaining === null) return undefined;
  const interval = row.refill_interval;
  return create(UsageLimitSchema, {
    remaining: BigInt(remaining ?? row.remaining),
    refillInterval:
      interval === "day"
        ? UsageRefillInterval.DAILY
        : interval === "month"
          ? UsageRefillInterval.MONTHLY
          : UsageRefillInterval.UNSPECIFIED,
    refillAmount: BigInt(row.refill_amount ?? 0),
    ...(interval !== null ? { nextRefillTime: timestampFromMs(nextPeriod(interval, now)) } : {}),
  });
}

/** What taking one use of a key found. */
export type UseTaken =
  | { readonly kind: "taken"; readonly remaining: number }
  | { readonly kind: "exhausted" }
  | { readonly kind: "unlimited" };

/**
 * Takes one use of a usage-limited key, atomically and exactly: one UPDATE
 * that refills first when a new UTC day or month has begun since the last
 * refill, and otherwise succeeds only while `remaining > 0`. Concurrent calls
 * serialize on the row, and each re-checks the condition on the row as the
 * previous one left it, so N uses are never exceeded, by any number of
 * replicas. A key whose limit has just been removed is `unlimited`.
 *
 * @example
 * ```ts
 * const taken = await takeUse(db, row.id);
 * if (taken.kind === "exhausted") return USAGE_EXCEEDED;
 * ```
 */
export async function takeUse(db: Kysely<Database>, keyId: string): Promise<UseTaken> {
  const { rows } = await sql<{ remaining: string | number }>`
    update api_keys set
      remaining = case when due then refill_amount - 1 else remaining - 1 end,
      refilled_at = case when due then date_trunc(refill_interval, now(), 'UTC') else refilled_at end
    from (
      select refill_interval is not null
        and date_trunc(refill_interval, now(), 'UTC') > coalesce(refilled_at, '-infinity') as due
      from api_keys where id = ${keyId}
    ) as refill
    where id = ${keyId} and remaining is not null and (remaining > 0 or due)
    returning remaining
  `.execute(db);
  const [row] = rows;
  if (row !== undefined) return { kind: "taken", remaining: Number(row.remaining) };
  const current = await db
    .selectFrom("api_keys")
    .select("remaining")
    .where("id", "=", keyId)
    .executeTakeFirst();
  return current === undefined || current.remaining !== null ? { kind: "exhausted" } : { kind: "unlimited" };
}
