import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { GetUsageResponseSchema, UsageOutcome } from "@latchkey/proto";
import { describe, expect, it } from "vitest";
import { usageSeries } from "./usage-series.js";

const START = Date.parse("2026-12-02T00:00:00Z");
const bucket = (minute: number, counts: [UsageOutcome, number][]) => ({
  startTime: timestampFromMs(START + minute * 60_000),
  total: BigInt(counts.reduce((sum, [, n]) => sum + n, 0)),
  counts: counts.map(([outcome, count]) => ({ outcome, count: BigInt(count) })),
});

describe("usageSeries", () => {
  it("puts each minute's counts in its column, with totals by outcome and the busiest minute", () => {
    const usage = create(GetUsageResponseSchema, {
      buckets: [
        bucket(0, [[UsageOutcome.ALLOWED, 3]]),
        bucket(59, [
          [UsageOutcome.ALLOWED, 5],
          [UsageOutcome.RATE_LIMITED, 2],
        ]),
      ],
    });
    const { columns, totals, peak } = usageSeries(usage, START, 60);
    expect([...columns.keys()]).toEqual([0, 59]);
    expect(columns.get(59)?.get(UsageOutcome.RATE_LIMITED)).toBe(2);
    expect(totals.get(UsageOutcome.ALLOWED)).toBe(8);
    expect(totals.get(UsageOutcome.RATE_LIMITED)).toBe(2);
    expect(peak).toBe(7);
  });

  it("leaves out buckets outside the window, and one without a time", () => {
    const usage = create(GetUsageResponseSchema, {
      buckets: [
        bucket(-1, [[UsageOutcome.ALLOWED, 100]]),
        bucket(60, [[UsageOutcome.ALLOWED, 100]]),
        { total: 1n, counts: [{ outcome: UsageOutcome.ALLOWED, count: 1n }] },
        bucket(30, [[UsageOutcome.INSUFFICIENT_SCOPE, 1]]),
      ],
    });
    const { columns, totals, peak } = usageSeries(usage, START, 60);
    expect([...columns.keys()]).toEqual([30]);
    expect(totals.get(UsageOutcome.ALLOWED)).toBeUndefined();
    expect(peak).toBe(1);
  });

  it("is empty for no traffic", () => {
    const { columns, peak } = usageSeries(create(GetUsageResponseSchema, {}), START, 1440);
    expect(columns.size).toBe(0);
    expect(peak).toBe(0);
  });
});
