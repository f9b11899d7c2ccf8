import { create } from "@bufbuild/protobuf";
import { createMemoryKeyEventBus, type UsageDelivery } from "@latchkey/events";
import { UsageOutcome, UsageReportSchema } from "@latchkey/proto";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createUsageRecorder } from "./usage-recorder.js";

const KEY = "key_0123456789012345678901";
const TEAM = "team_0123456789012345678901";

function setup(options: { backlogMax?: number; failing?: () => boolean } = {}) {
  const bus = createMemoryKeyEventBus();
  const delivered: UsageDelivery[] = [];
  const transport = {
    publishUsage: async (...args: Parameters<typeof bus.publishUsage>) => {
      if (options.failing?.()) throw new Error("NATS is not connected");
      return bus.publishUsage(...args);
    },
    consumeUsage: bus.consumeUsage,
  };
  const registry = new Registry();
  const usage = createUsageRecorder({
    verifierId: "v_test",
    transport,
    flushMs: 3_600_000, // flushed by hand
    backlogMax: options.backlogMax ?? 600,
    registry,
  });
  void bus.consumeUsage(async (delivery) => {
    delivered.push(delivery);
  });
  return { usage, delivered, registry, close: () => Promise.all([usage.close(), bus.close()]) };
}

describe("createUsageRecorder", () => {
  it("sums requests per key and outcome into one report per interval, with ids verifier-sequence", async () => {
    const { usage, delivered, close } = setup();
    for (let i = 0; i < 1_000; i++) usage.record(KEY, TEAM, UsageOutcome.ALLOWED);
    usage.record(KEY, TEAM, UsageOutcome.INSUFFICIENT_SCOPE);
    usage.record(KEY, TEAM, 0 as UsageOutcome); // not an outcome: ignored
    usage.record(KEY, TEAM, 99 as UsageOutcome);
    await usage.flush();
    await usage.flush(); // an empty interval sends nothing
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(delivered.map((d) => d.messageId)).toEqual(["v_test-1"]);
    const counts = delivered[0]?.report.counts.map((c) => [c.keyId, c.teamId, c.outcome, c.count]);
    expect(counts).toEqual([
      [KEY, TEAM, UsageOutcome.ALLOWED, 1_000],
      [KEY, TEAM, UsageOutcome.INSUFFICIENT_SCOPE, 1],
    ]);
    const minute = Number(delivered[0]?.report.minute?.seconds) * 1000;
    expect(minute % 60_000).toBe(0);
    await close();
  });

  it("splits an interval with many keys into reports of at most 4,096 counts", async () => {
    const { usage, delivered, close } = setup();
    for (let i = 0; i < 5_000; i++)
      usage.record(`key_${String(i).padStart(22, "0")}`, TEAM, UsageOutcome.ALLOWED);
    await usage.flush();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(delivered.map((d) => d.report.counts.length)).toEqual([4_096, 904]);
    expect(delivered.map((d) => d.messageId)).toEqual(["v_test-1", "v_test-2"]);
    await close();
  });

  it("keeps reports while it cannot publish, drops the oldest beyond the bound, and says so", async () => {
    let down = true;
    const { usage, delivered, registry, close } = setup({ backlogMax: 2, failing: () => down });
    for (let interval = 1; interval <= 3; interval++) {
      for (let i = 0; i < interval; i++) usage.record(KEY, TEAM, UsageOutcome.ALLOWED);
      await usage.flush();
    }
    expect(usage.stats()).toMatchObject({ backlogBatches: 2, droppedBatches: 1, droppedRequests: 1 });
    const metrics = await registry.metrics();
    expect(metrics).toContain("latchkey_verifier_usage_backlog_batches 2");
    expect(metrics).toContain("latchkey_verifier_usage_dropped_requests_total 1");
    expect(metrics).toContain("latchkey_verifier_usage_publish_failures_total 3");
    down = false;
    await usage.flush();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(delivered.map((d) => [d.messageId, d.report.counts[0]?.count])).toEqual([
      ["v_test-2", 2],
      ["v_test-3", 3],
    ]);
    expect(usage.stats().backlogBatches).toBe(0);
    await close();
  });

  it("counts nothing without a transport", async () => {
    const usage = createUsageRecorder({
      verifierId: "v_none",
      transport: undefined,
      flushMs: 1_000,
      backlogMax: 1,
      registry: new Registry(),
    });
    usage.record(KEY, TEAM, UsageOutcome.ALLOWED);
    await usage.flush();
    expect(usage.stats()).toMatchObject({ backlogBatches: 0, publishedBatches: 0 });
    await usage.close();
  });
});

describe("the in-process bus's usage queue", () => {
  it("refuses a known id and redelivers a report whose handler failed", async () => {
    const bus = createMemoryKeyEventBus();
    const seen: Array<[string, number]> = [];
    let fail = true;
    await bus.consumeUsage(async ({ messageId, deliveryCount }) => {
      seen.push([messageId, deliveryCount]);
      if (fail) {
        fail = false;
        throw new Error("database down");
      }
    });
    const report = create(UsageReportSchema, { verifierId: "v_x", sequence: 1n });
    expect((await bus.publishUsage(report, "v_x-1")).duplicate).toBe(false);
    expect((await bus.publishUsage(report, "v_x-1")).duplicate).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(seen).toEqual([
      ["v_x-1", 1],
      ["v_x-1", 2],
    ]);
    await bus.close();
  });
});
