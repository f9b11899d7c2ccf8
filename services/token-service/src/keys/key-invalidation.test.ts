import { describe, expect, it } from "vitest";
import { invalidateKeys } from "./key-invalidation.js";
import { KeyRowCache, tokenHashHex } from "./key-row-cache.js";

describe("invalidateKeys", () => {
  it("drops every changed key from the row cache by its token hash, then wakes the publisher once", () => {
    const cache = new KeyRowCache({ maxEntries: 10, ttlMs: 60_000 });
    // A bytea as PGlite returns it (a Uint8Array view into a larger buffer) and as pg does (a Buffer).
    const view = new Uint8Array([0, 0xab, 0xcd]).subarray(1);
    const buffer = Buffer.from([0x12, 0x34]);
    cache.set("abcd", null, cache.epoch);
    cache.set("1234", null, cache.epoch);
    cache.set("ffff", null, cache.epoch);
    let wakes = 0;
    invalidateKeys({ cache, publisher: { wake: () => wakes++ } }, [
      { id: "key_1", token_hash: view },
      { id: "key_2", token_hash: buffer },
    ]);
    expect(cache.get("abcd", 0n)).toBeUndefined();
    expect(cache.get("1234", 0n)).toBeUndefined();
    expect(cache.get("ffff", 0n)).toEqual({ value: null });
    expect(wakes).toBe(1);
  });

  it("keys the cache by the same hex for a Buffer and a Uint8Array", () => {
    expect(tokenHashHex(new Uint8Array([0, 0xab, 0xcd]).subarray(1))).toBe("abcd");
    expect(tokenHashHex(Buffer.from([0xab, 0xcd]))).toBe("abcd");
  });
});
