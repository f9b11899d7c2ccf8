import { create } from "@bufbuild/protobuf";
import { KeySchema, VerifyResponseSchema, VerifyResult } from "@latchkey/proto";
import { describe, expect, it } from "vitest";
import type { ApiKeyRow } from "../db/tables.js";
import { type CachedKey, KeyRowCache } from "./key-row-cache.js";

function entry(id: string): CachedKey {
  const row = { id } as ApiKeyRow;
  const key = create(KeySchema, { id });
  return {
    row,
    key,
    valid: create(VerifyResponseSchema, { result: VerifyResult.VALID, key }),
    scopes: new Set(),
  };
}

describe("KeyRowCache", () => {
  it("answers what was set, including 'no such key'", () => {
    const cache = new KeyRowCache({ maxEntries: 10, ttlMs: 60_000 });
    cache.set("h1", entry("key_1"), cache.epoch);
    cache.set("h2", null, cache.epoch);
    expect(cache.get("h1", 0n)?.value?.row.id).toBe("key_1");
    expect(cache.get("h2", 0n)).toEqual({ value: null });
    expect(cache.get("h3", 0n)).toBeUndefined();
  });

  it("drops an entry by key id alone, and by hash alone", () => {
    const cache = new KeyRowCache({ maxEntries: 10, ttlMs: 60_000 });
    cache.set("h1", entry("key_1"), cache.epoch);
    cache.set("h2", entry("key_2"), cache.epoch);
    cache.invalidate("key_1");
    expect(cache.get("h1", 0n)).toBeUndefined();
    cache.invalidate("key_unknown", "h2");
    expect(cache.get("h2", 0n)).toBeUndefined();
  });

  it("does not cache a read that started before an invalidation", () => {
    const cache = new KeyRowCache({ maxEntries: 10, ttlMs: 60_000 });
    const before = cache.epoch;
    cache.invalidate("key_1", "h1"); // a revocation committed while the read was in flight
    cache.set("h1", entry("key_1"), before);
    expect(cache.get("h1", 0n)).toBeUndefined();
    cache.set("h1", entry("key_1"), cache.epoch);
    expect(cache.get("h1", 0n)).toBeDefined();
  });

  it("forgets everything on clear", () => {
    const cache = new KeyRowCache({ maxEntries: 10, ttlMs: 60_000 });
    const epoch = cache.epoch;
    cache.set("h1", entry("key_1"), epoch);
    cache.clear();
    expect(cache.get("h1", 0n)).toBeUndefined();
    cache.set("h1", entry("key_1"), epoch);
    expect(cache.get("h1", 0n)).toBeUndefined();
  });

  it("keeps the id index right when an entry is replaced or evicted", () => {
    const cache = new KeyRowCache({ maxEntries: 1, ttlMs: 60_000 });
    cache.set("h1", entry("key_1"), cache.epoch);
    cache.set("h1", entry("key_1"), cache.epoch); // replaced: still found by id
    cache.invalidate("key_1");
    expect(cache.get("h1", 0n)).toBeUndefined();
    cache.set("h1", entry("key_1"), cache.epoch);
    cache.set("h2", entry("key_2"), cache.epoch); // evicts h1
    expect(cache.get("h1", 0n)).toBeUndefined();
    cache.invalidate("key_2");
    expect(cache.get("h2", 0n)).toBeUndefined();
  });

  it("does not answer a caller that has applied a later key event", () => {
    const cache = new KeyRowCache({ maxEntries: 10, ttlMs: 60_000 });
    cache.clear(10); // subscribed at stream sequence 10
    cache.set("h1", entry("key_1"), cache.epoch);
    expect(cache.get("h1", 10n)).toBeDefined();
    // A verifier has applied event 11 (perhaps revoking key_1); this replica has not yet.
    expect(cache.get("h1", 11n)).toBeUndefined();
    cache.applyEvent(11, "key_2", "h2");
    expect(cache.appliedSequence).toBe(11n);
    expect(cache.get("h1", 11n)).toBeDefined();
  });

  it("applies an event by evicting its key, and restarts its sequence after a gap", () => {
    const cache = new KeyRowCache({ maxEntries: 10, ttlMs: 60_000 });
    cache.set("h1", entry("key_1"), cache.epoch);
    cache.applyEvent(7, "key_1");
    expect(cache.get("h1", 0n)).toBeUndefined();
    expect(cache.appliedSequence).toBe(7n);
    cache.clear(); // a reconnect keeps the position
    expect(cache.appliedSequence).toBe(7n);
    cache.clear(2); // a re-created stream starts again lower
    expect(cache.appliedSequence).toBe(2n);
  });

  it("caches nothing when disabled", () => {
    const cache = new KeyRowCache({ maxEntries: 0, ttlMs: 60_000 });
    cache.set("h1", entry("key_1"), cache.epoch);
    expect(cache.get("h1", 0n)).toBeUndefined();
  });
});
