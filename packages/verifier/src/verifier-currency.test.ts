import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { KeySchema, VerifyResponseSchema, VerifyResult } from "@latchkey/proto";
import { describe, expect, it } from "vitest";
import { type CacheEntry, createCacheEntry } from "./cache-entry.js";
import { createVerifierCurrency } from "./verifier-currency.js";

const lifetimes = { ttlMs: 60_000, negativeTtlMs: 5_000 };
const T = 1_000_000;

function entry(result: VerifyResult, expiresAt?: number): CacheEntry {
  const key = create(KeySchema, {
    id: "key_1",
    teamId: "team_1",
    scopes: ["read"],
    ...(expiresAt !== undefined ? { expireTime: timestampFromMs(expiresAt) } : {}),
  });
  const response = create(VerifyResponseSchema, {
    result,
    ...(result === VerifyResult.VALID ? { key } : {}),
  });
  const made = createCacheEntry("hash", response, T, lifetimes);
  if (!("entry" in made)) throw new Error("not cacheable");
  return made.entry;
}

describe("verifier currency", () => {
  it("without an event feed, serves a VALID answer for maxStaleMs only", () => {
    const currency = createVerifierCurrency({ maxStaleMs: 2_000 });
    const valid = entry(VerifyResult.VALID);
    expect(currency.state(valid, T + 2_000)).toBe("usable");
    expect(currency.state(valid, T + 2_001)).toBe("unvouched");
  });

  it("with a current feed, serves a VALID answer for its whole lifetime", () => {
    let coveredAt = T;
    const currency = createVerifierCurrency({ maxStaleMs: 2_000, coveredAt: () => coveredAt });
    const valid = entry(VerifyResult.VALID);
    coveredAt = T + 30_000;
    expect(currency.state(valid, T + 31_000)).toBe("usable");
    expect(currency.state(valid, T + 32_001)).toBe("unvouched"); // the proof is now too old
    coveredAt = T + 59_999;
    expect(currency.state(valid, T + 60_000)).toBe("lapsed");
  });

  it("does not hold negative answers to the feed: a stale no only delays access", () => {
    const currency = createVerifierCurrency({ maxStaleMs: 2_000 });
    const notFound = entry(VerifyResult.NOT_FOUND);
    expect(currency.state(notFound, T + 4_999)).toBe("usable");
    expect(currency.state(notFound, T + 5_000)).toBe("lapsed");
  });

  it("reports a key past its expiry, before anything else", () => {
    const currency = createVerifierCurrency({ maxStaleMs: 2_000, coveredAt: () => T + 10_000 });
    const expiring = entry(VerifyResult.VALID, T + 10_000);
    expect(currency.state(expiring, T + 9_999)).toBe("usable");
    expect(currency.state(expiring, T + 10_000)).toBe("key-expired");
  });
});
