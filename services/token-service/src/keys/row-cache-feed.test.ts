import { create } from "@bufbuild/protobuf";
import { createMemoryKeyEventBus, createOutboxCoverage } from "@latchkey/events";
import { KeyEventSchema, KeyEventType } from "@latchkey/proto";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { KeyRowCache } from "./key-row-cache.js";
import { createRowCacheFeed } from "./row-cache-feed.js";

const logger = pino({ level: "silent" });

function revoked(id: number, hash: number[]) {
  return create(KeyEventSchema, {
    id: BigInt(id),
    type: KeyEventType.REVOKED,
    keyId: `key_${id}`,
    teamId: "team_a",
    tokenHash: new Uint8Array(hash),
  });
}

describe("createRowCacheFeed", () => {
  it("is disconnected until subscribed, then evicts each event's key and follows the stream's sequence", async () => {
    const bus = createMemoryKeyEventBus();
    await bus.publish(revoked(1, [0x01]), "m-1"); // before the feed: already reflected by an empty cache
    const cache = new KeyRowCache({ maxEntries: 10, ttlMs: 60_000 });
    let connects = 0;
    const coverage = createOutboxCoverage();
    const feed = createRowCacheFeed({ bus, cache, coverage, logger, onConnected: () => connects++ });
    expect(feed.connected()).toBe(false);
    await feed.subscribe();
    expect(feed.connected()).toBe(true);
    expect(connects).toBe(1);
    expect(cache.appliedSequence).toBe(1n);
    cache.set("abcd", null, cache.epoch);
    cache.set("ef01", null, cache.epoch);
    // A proof that reaches past what the cache has applied waits for the event that gets it there.
    coverage.offer(coverage.ticket(), 1_000, 2);
    expect(coverage.coveredAt()).toBe(Number.NEGATIVE_INFINITY);
    const { sequence } = await bus.publish(revoked(2, [0xab, 0xcd]), "m-2");
    await vi.waitFor(() => expect(cache.appliedSequence).toBe(BigInt(sequence)));
    expect(coverage.coveredAt()).toBe(1_000);
    expect(cache.get("abcd", 0n)).toBeUndefined();
    expect(cache.get("ef01", 0n)).toEqual({ value: null });
    await feed.close();
    await bus.close();
  });

  it("subscribes in the background once ready, retrying what failed, and stops when closed", async () => {
    const bus = createMemoryKeyEventBus();
    const cache = new KeyRowCache({ maxEntries: 10, ttlMs: 60_000 });
    const feed = createRowCacheFeed({ bus, cache, coverage: createOutboxCoverage(), logger });
    let attempts = 0;
    feed.subscribeWhenReady(async () => {
      attempts += 1;
      if (attempts === 1) throw new Error("stream not there yet");
    });
    await vi.waitFor(() => expect(feed.connected()).toBe(true), { timeout: 2_000 });
    expect(attempts).toBe(2);
    await feed.close();
    await bus.close();

    const never = createRowCacheFeed({
      bus: createMemoryKeyEventBus(),
      cache,
      coverage: createOutboxCoverage(),
      logger,
    });
    never.subscribeWhenReady(async () => {
      throw new Error("NATS is down");
    });
    await never.close();
    expect(never.connected()).toBe(false);
  });
});
