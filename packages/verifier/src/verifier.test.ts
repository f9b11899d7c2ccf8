import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { VerifyResponseSchema, VerifyResult } from "@latchkey/proto";
import { generateToken, hashToken } from "@latchkey/token";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createTokenServiceStub, type TokenServiceStub } from "../test-support/token-service-stub.js";
import { createVerifier, type Verifier } from "./verifier.js";
import { tokenCacheKey } from "./verifier-cache.js";
import type { VerifierOptions } from "./verifier-options.js";

let stub: TokenServiceStub;
const verifiers: Verifier[] = [];

function verifier(options: Partial<VerifierOptions> = {}): Verifier {
  const created = createVerifier({ transport: stub.transport, healthProbeIntervalMs: 0, ...options });
  verifiers.push(created);
  return created;
}

beforeEach(() => {
  stub = createTokenServiceStub();
  vi.useFakeTimers({ toFake: ["Date"], now: new Date("2030-01-01T00:00:00Z") });
});

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(verifiers.splice(0).map((v) => v.close()));
});

describe("local rejection", () => {
  it("answers MALFORMED for a bad checksum with no RPC and no cache entry", async () => {
    const v = verifier();
    const token = generateToken({ prefix: "lk", environment: "live" });
    const typo = `${token.slice(0, -1)}${token.endsWith("a") ? "b" : "a"}`;
    expect(await v.verify(typo)).toMatchObject({ ok: false, code: "MALFORMED", cached: false });
    expect(await v.verify("")).toMatchObject({ code: "MALFORMED" });
    expect(await v.verify("Bearer nonsense")).toMatchObject({ code: "MALFORMED" });
    expect(v.verifyCached(typo)).toMatchObject({ code: "MALFORMED" });
    expect(stub.calls).toBe(0);
    expect(v.status().cacheEntries).toBe(0);
  });

  it("answers MALFORMED for a token over 512 bytes without hashing it", async () => {
    const v = verifier();
    expect(await v.verify("x".repeat(513))).toMatchObject({ code: "MALFORMED" });
    expect(stub.calls).toBe(0);
  });

  it("rejects another prefix when one is configured", async () => {
    const v = verifier({ prefix: "og" });
    const { token } = stub.issue();
    expect(await v.verify(token)).toMatchObject({ code: "MALFORMED" });
    expect(stub.calls).toBe(0);
  });
});

describe("cache", () => {
  it("answers a repeat from the cache, with no RPC", async () => {
    const v = verifier();
    const { token, key } = stub.issue({ scopes: ["write"] });
    const first = await v.verify(token);
    const second = await v.verify(token);
    expect(first).toMatchObject({ ok: true, code: "VALID", cached: false, stale: false });
    expect(second).toMatchObject({ ok: true, code: "VALID", cached: true, stale: false });
    expect(second.ok && second.key).toMatchObject({ id: key.id, teamId: "team_1", scopes: ["write"] });
    expect(second.ok && second.key.metadata).toEqual({ owner: "tests" });
    expect(v.verifyCached(token)).toBe(second);
    expect(stub.calls).toBe(1);
  });

  it("keys the cache by the token's SHA-256, never the token", () => {
    const token = generateToken({ prefix: "lk", environment: "live" });
    expect(tokenCacheKey(token)).toBe(hashToken(token).toString("base64"));
    expect(tokenCacheKey(token)).not.toContain(token.slice(8, 20));
  });

  it("returns undefined from verifyCached on a miss, and counts hits and misses", async () => {
    const v = verifier();
    const { token } = stub.issue();
    expect(v.verifyCached(token)).toBeUndefined();
    await v.verify(token);
    v.verifyCached(token);
    const text = await v.metrics.metrics();
    expect(text).toContain("latchkey_verifier_cache_misses_total 1");
    expect(text).toContain("latchkey_verifier_cache_hits_total 1");
    expect(text).toMatch(/latchkey_verifier_verify_rpc_duration_seconds_count\{result="VALID"\} 1/);
  });

  it("checks required scopes on every answer, cache hits included, with one RPC for all routes", async () => {
    const v = verifier();
    const { token } = stub.issue({ scopes: ["write", "chats:read"] });
    expect(await v.verify(token, { requiredScopes: ["read"] })).toMatchObject({ ok: true, cached: false });
    expect(await v.verify(token, { requiredScopes: ["write", "chats:read"] })).toMatchObject({
      ok: true,
      cached: true,
    });
    const denied = await v.verify(token, { requiredScopes: ["admin", "chats:read", "chats:write"] });
    expect(denied).toMatchObject({
      ok: false,
      code: "INSUFFICIENT_SCOPE",
      missingScopes: ["admin", "chats:write"],
      cached: true,
    });
    expect(!denied.ok && denied.code === "INSUFFICIENT_SCOPE" && denied.key?.scopes).toEqual([
      "write",
      "chats:read",
    ]);
    expect(v.verifyCached(token, ["admin"])).toMatchObject({
      code: "INSUFFICIENT_SCOPE",
      missingScopes: ["admin"],
    });
    expect(stub.calls).toBe(1);
    expect(stub.requests[0]?.requiredScopes).toEqual([]);
    // Without an event feed there is nothing to be fresher than.
    expect(stub.requests[0]?.minEventSequence).toBe(0n);
  });

  it("makes one RPC for 50 concurrent misses of one token", async () => {
    const v = verifier();
    const { token } = stub.issue();
    stub.hold();
    const pending = Array.from({ length: 50 }, () => v.verify(token));
    stub.release();
    const outcomes = await Promise.all(pending);
    expect(outcomes.every((o) => o.ok && !o.cached)).toBe(true);
    expect(stub.calls).toBe(1);
    expect(await v.metrics.metrics()).toContain("latchkey_verifier_rpc_coalesced_total 49");
  });

  it("caches NOT_FOUND for the negative TTL only", async () => {
    const v = verifier({ negativeTtlMs: 5_000 });
    const token = generateToken({ prefix: "lk", environment: "live" });
    expect(await v.verify(token)).toMatchObject({ code: "NOT_FOUND", cached: false });
    vi.advanceTimersByTime(4_900);
    expect(await v.verify(token)).toMatchObject({ code: "NOT_FOUND", cached: true });
    vi.advanceTimersByTime(200);
    expect(await v.verify(token)).toMatchObject({ code: "NOT_FOUND", cached: false });
    expect(stub.calls).toBe(2);
  });

  it("caches REVOKED for the positive TTL and DISABLED for the negative TTL", async () => {
    const v = verifier({ ttlMs: 60_000, negativeTtlMs: 5_000 });
    const revoked = stub.issue();
    const disabled = stub.issue();
    stub.revoke(revoked.token);
    stub.setEnabled(disabled.token, false);
    expect(await v.verify(revoked.token)).toMatchObject({ code: "REVOKED", cached: false });
    expect(await v.verify(disabled.token)).toMatchObject({ code: "DISABLED", cached: false });
    vi.advanceTimersByTime(30_000);
    expect(await v.verify(revoked.token)).toMatchObject({ code: "REVOKED", cached: true });
    expect(await v.verify(disabled.token)).toMatchObject({ code: "DISABLED", cached: false });
    expect(stub.calls).toBe(3);
  });

  it("clamps a VALID answer's lifetime to the key's expiry and reports the expiry", async () => {
    // No event bus here: a long maxStale lets the TTL and the expiry clamp show.
    const v = verifier({ ttlMs: 60_000, maxStaleMs: 60_000 });
    const { token, key } = stub.issue({ expiresAt: Date.now() + 10_000 });
    const invalidated: string[] = [];
    v.onInvalidate((invalidation) => invalidated.push(`${invalidation.keyId}:${invalidation.type}`));
    expect(await v.verify(token)).toMatchObject({ code: "VALID", cached: false });
    vi.advanceTimersByTime(9_000);
    expect(await v.verify(token)).toMatchObject({ code: "VALID", cached: true });
    vi.advanceTimersByTime(1_000);
    expect(v.verifyCached(token)).toBeUndefined();
    expect(await v.verify(token)).toMatchObject({ code: "EXPIRED", cached: false });
    expect(invalidated).toEqual([`${key.id}:7`]);
    expect(stub.calls).toBe(2);
  });

  it("without an event bus, uses a VALID answer for maxStale only, half of it spent at the token-service", async () => {
    const v = verifier({ maxStaleMs: 2_000 });
    const { token } = stub.issue();
    await v.verify(token);
    // The token-service may answer from a cache proven current up to 1 s before: the answer counts
    // as verified that much earlier, so it is served for the other second.
    expect(stub.requests[0]?.maxStalenessMs).toBe(1_000);
    vi.advanceTimersByTime(1_000);
    expect(await v.verify(token)).toMatchObject({ cached: true });
    vi.advanceTimersByTime(1);
    expect(v.verifyCached(token)).toBeUndefined();
    expect(await v.verify(token)).toMatchObject({ cached: false });
    expect(stub.calls).toBe(2);
  });

  it("holds its entry bound under 20,000 distinct well-formed tokens", async () => {
    const v = verifier();
    for (let i = 0; i < 20_000; i++) {
      const outcome = await v.verify(generateToken({ prefix: "lk", environment: "live" }));
      if (outcome.code !== "NOT_FOUND") throw new Error(`unexpected ${outcome.code}`);
    }
    expect(v.status().cacheEntries).toBe(10_000);
    expect(stub.calls).toBe(20_000);
    expect(await v.metrics.metrics()).toContain(
      'latchkey_verifier_cache_evictions_total{reason="lru"} 10000',
    );
  }, 120_000); // 20,000 RPCs through the in-memory transport: over 30 s on a busy 2-core machine

  it("holds its byte bound", async () => {
    const v = verifier({ maxBytes: 64 * 1024 });
    for (let i = 0; i < 2_000; i++) await v.verify(generateToken({ prefix: "lk", environment: "live" }));
    const { cacheEntries, cacheBytes } = v.status();
    expect(cacheBytes).toBeLessThanOrEqual(64 * 1024);
    expect(cacheEntries).toBeGreaterThan(50);
    expect(cacheEntries).toBeLessThan(200);
  });
});

describe("token-service failures", () => {
  it("fails closed on an answer it cannot read, without calling the service unreachable", async () => {
    const v = verifier();
    const { token } = stub.issue();
    for (const answer of [
      create(VerifyResponseSchema, { result: 99 as VerifyResult }),
      create(VerifyResponseSchema, { result: VerifyResult.VALID }),
    ]) {
      stub.answerWith = answer;
      expect(await v.verify(token)).toMatchObject({ ok: false, code: "UNAVAILABLE", cached: false });
      expect(v.isHealthy()).toBe(true);
      expect(v.verifyCached(token)).toBeUndefined();
    }
    stub.answerWith = undefined;
    expect(await v.verify(token)).toMatchObject({ ok: true });
  });

  it("answers UNAVAILABLE when the token-service fails and nothing is cached", async () => {
    const v = verifier();
    const { token } = stub.issue();
    stub.failWith = Code.Unavailable;
    const outcome = await v.verify(token);
    expect(outcome).toMatchObject({ ok: false, code: "UNAVAILABLE", cached: false, stale: false });
    expect(outcome.code === "UNAVAILABLE" && (outcome.cause as { code?: Code }).code).toBe(Code.Unavailable);
    expect(v.isHealthy()).toBe(false);
    // Counted as a fail-closed answer.
    expect(await v.metrics.metrics()).toMatch(/^latchkey_verifier_unavailable_total 1$/m);
    stub.failWith = undefined;
    expect(await v.verify(token)).toMatchObject({ ok: true });
    expect(v.isHealthy()).toBe(true);
    expect(await v.metrics.metrics()).toMatch(/^latchkey_verifier_unavailable_total 1$/m);
  });

  it("does not serve an expired answer on error when serve-stale is off", async () => {
    const v = verifier({ maxStaleMs: 1_000 });
    const { token } = stub.issue();
    await v.verify(token);
    vi.advanceTimersByTime(1_500);
    stub.failWith = Code.Unavailable;
    expect(await v.verify(token)).toMatchObject({ code: "UNAVAILABLE" });
  });

  it("serves a recent answer marked stale when serve-stale-on-error is on, within its window", async () => {
    const v = verifier({ maxStaleMs: 1_000, ttlMs: 1_000, serveStaleOnErrorMs: 30_000 });
    const { token } = stub.issue({ scopes: ["read"] });
    await v.verify(token);
    vi.advanceTimersByTime(10_000);
    stub.failWith = Code.DeadlineExceeded;
    expect(await v.verify(token)).toMatchObject({ ok: true, code: "VALID", cached: true, stale: true });
    expect(await v.verify(token, { requiredScopes: ["write"] })).toMatchObject({
      code: "INSUFFICIENT_SCOPE",
      stale: true,
    });
    vi.advanceTimersByTime(21_000);
    expect(await v.verify(token)).toMatchObject({ code: "UNAVAILABLE" });
    expect(await v.metrics.metrics()).toContain("latchkey_verifier_stale_served_total 2");
  });

  it("never serves a stale VALID past the key's expiry", async () => {
    const v = verifier({ ttlMs: 1_000, serveStaleOnErrorMs: 60_000 });
    const { token } = stub.issue({ expiresAt: Date.now() + 5_000 });
    await v.verify(token);
    vi.advanceTimersByTime(5_000);
    stub.failWith = Code.Unavailable;
    expect(await v.verify(token)).toMatchObject({ code: "UNAVAILABLE" });
  });

  it("lets an aborted caller go while the shared RPC answers the others", async () => {
    const v = verifier();
    const { token } = stub.issue();
    stub.hold();
    const controller = new AbortController();
    const aborted = v.verify(token, { signal: controller.signal });
    const patient = v.verify(token);
    controller.abort();
    expect(await aborted).toMatchObject({ code: "UNAVAILABLE" });
    stub.release();
    expect(await patient).toMatchObject({ code: "VALID" });
    expect(stub.calls).toBe(1);
  });

  it("answers UNAVAILABLE after closing", async () => {
    const v = verifier();
    const { token } = stub.issue();
    await v.close();
    expect(await v.verify(token)).toMatchObject({ code: "UNAVAILABLE" });
    expect(v.isHealthy()).toBe(false);
  });
});
