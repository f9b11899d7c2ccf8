import { createMemoryKeyEventBus, type KeyEventBus } from "@latchkey/events";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PropagationTracker } from "./propagation-tracker.js";

// The tracker's clock is injected; its one timer (the wait's deadline) uses fake timers.
let now = 0;
let bus: KeyEventBus;
let tracker: PropagationTracker;
const flush = () => new Promise<void>((resolve) => queueMicrotask(resolve));

function heartbeat(verifierId: string, appliedSequence = 0, intervalMs = 1_000) {
  bus.sendHeartbeat({
    $typeName: "latchkey.v1.VerifierHeartbeat",
    verifierId,
    appliedSequence: BigInt(appliedSequence),
    interval: { $typeName: "google.protobuf.Duration", seconds: BigInt(intervalMs / 1000), nanos: 0 },
    label: "",
  });
}
function ack(verifierId: string, eventIds: number[], appliedSequence = 0) {
  bus.sendAck({
    $typeName: "latchkey.v1.VerifierAck",
    verifierId,
    eventIds: eventIds.map(BigInt),
    appliedSequence: BigInt(appliedSequence),
  });
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  now = 0;
  bus = createMemoryKeyEventBus();
  tracker = new PropagationTracker(bus, () => now);
});
afterEach(async () => {
  await tracker.close();
  await bus.close();
  vi.useRealTimers();
});

describe("PropagationTracker", () => {
  it("answers at once, complete, when no verifier is live", async () => {
    expect(await tracker.track(1, now, 5_000)).toEqual({
      liveVerifiers: 0,
      confirmed: 0,
      slowestMs: 0,
      complete: true,
    });
  });

  it("counts a verifier live for three heartbeat intervals", async () => {
    heartbeat("v1", 0, 1_000);
    await flush();
    now = 3_000;
    expect(tracker.liveVerifiers()).toEqual(["v1"]);
    now = 3_001;
    expect(tracker.liveVerifiers()).toEqual([]);
  });

  it("completes when every live verifier acknowledges the event, timing the slowest", async () => {
    heartbeat("v1");
    heartbeat("v2");
    await flush();
    const waiting = tracker.track(7, now, 5_000);
    now = 4;
    ack("v1", [7]);
    await flush();
    now = 9;
    ack("v2", [6, 7]);
    await flush();
    expect(await waiting).toEqual({ liveVerifiers: 2, confirmed: 2, slowestMs: 9, complete: true });
  });

  it("takes a heartbeat at or past the event's stream sequence as confirmation", async () => {
    heartbeat("v1", 10);
    await flush();
    const waiting = tracker.track(8, now, 5_000);
    tracker.published(8, 12);
    heartbeat("v1", 11);
    await flush();
    now = 20;
    heartbeat("v1", 12);
    await flush();
    expect(await waiting).toMatchObject({ confirmed: 1, complete: true, slowestMs: 20 });
  });

  it("is confirmed at once by a verifier already past a sequence published before the wait began", async () => {
    heartbeat("v1", 50);
    await flush();
    tracker.published(9, 40);
    expect(await tracker.track(9, now, 5_000)).toMatchObject({
      liveVerifiers: 1,
      confirmed: 1,
      complete: true,
    });
  });

  it("gives up at the deadline and reports who confirmed", async () => {
    heartbeat("v1");
    heartbeat("silent");
    await flush();
    const waiting = tracker.track(3, now, 2_000);
    ack("v1", [3]);
    await flush();
    vi.advanceTimersByTime(2_000);
    expect(await waiting).toMatchObject({ liveVerifiers: 2, confirmed: 1, complete: false });
  });

  it("ignores acknowledgements from verifiers that became live after the wait began", async () => {
    heartbeat("v1");
    await flush();
    const waiting = tracker.track(4, now, 1_000);
    ack("late", [4]);
    await flush();
    vi.advanceTimersByTime(1_000);
    expect(await waiting).toMatchObject({ liveVerifiers: 1, confirmed: 0, complete: false });
  });
});
