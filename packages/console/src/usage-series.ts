import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type GetUsageResponse, UsageOutcome } from "@latchkey/proto";

/** The outcomes drawn, bottom to top, with their legend names. */
export const OUTCOMES = [
  { outcome: UsageOutcome.ALLOWED, name: "Allowed", css: "allowed" },
  { outcome: UsageOutcome.INSUFFICIENT_SCOPE, name: "Insufficient scope", css: "scope" },
  { outcome: UsageOutcome.RATE_LIMITED, name: "Rate limited", css: "limited" },
  { outcome: UsageOutcome.USAGE_EXCEEDED, name: "Usage exceeded", css: "exceeded" },
] as const;

/**
 * GetUsage's minute buckets as chart columns: counts by outcome per minute since `startMs` (buckets
 * outside the window are left out), totals by outcome, and the busiest minute's total.
 *
 * @example
 * ```ts
 * const { columns, totals, peak } = usageSeries(usage, startMs, 1440);
 * ```
 */
export function usageSeries(usage: GetUsageResponse, startMs: number, minutes: number) {
  const columns = new Map<number, Map<UsageOutcome, number>>();
  const totals = new Map<UsageOutcome, number>();
  let peak = 0;
  for (const bucket of usage.buckets) {
    if (bucket.startTime === undefined) continue;
    const column = Math.floor((timestampMs(bucket.startTime) - startMs) / 60_000);
    if (column < 0 || column >= minutes) continue;
    const counts = columns.get(column) ?? new Map<UsageOutcome, number>();
    for (const { outcome, count } of bucket.counts) {
      counts.set(outcome, (counts.get(outcome) ?? 0) + Number(count));
      totals.set(outcome, (totals.get(outcome) ?? 0) + Number(count));
    }
    columns.set(column, counts);
    peak = Math.max(
      peak,
      [...counts.values()].reduce((sum, n) => sum + n, 0),
    );
  }
  return { columns, totals, peak };
}
