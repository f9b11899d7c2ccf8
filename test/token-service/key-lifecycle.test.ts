// What Update, Rotate, Revoke and expiry do to what Verify answers, right after
// each call returns (the service's own row cache is dropped at commit).
import { setTimeout as sleep } from "node:timers/promises";
import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { VerifyResult } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

/** Milliseconds of a timestamp; NaN when unset, so comparisons fail. */
const millis = (t: Timestamp | undefined) => (t ? timestampDate(t).getTime() : Number.NaN);

let service: TestService;
let teamId: string;
beforeAll(async () => {
  service = await startTestService();
  teamId = (await service.teams().createTeam({ name: "lifecycle" })).team?.id ?? "";
});
afterAll(() => service?.close());

const tokens = () => service.tokens();
const verify = (token: string, requiredScopes: string[] = []) =>
  service.tokens(null).verify({ token, requiredScopes });
async function issue(name: string, extra: Parameters<ReturnType<typeof tokens>["issue"]>[0] = {}) {
  const { key, token } = await tokens().issue({ teamId, name, scopes: ["read"], ...extra });
  return { keyId: key?.id ?? "", token, key };
}
/** Verifies until the answer is cached (several calls), so a later change must drop the cache. */
async function warm(token: string) {
  for (let i = 0; i < 5; i++) expect((await verify(token)).result).toBe(VerifyResult.VALID);
}

describe("Issue and Get", () => {
  it("returns the public fields and the token once; Get returns the same fields and no token", async () => {
    const expireTime = timestampFromDate(new Date(Date.now() + 3_600_000));
    const issued = await tokens().issue({
      teamId,
      name: "  padded name  ",
      scopes: ["read", "chats:write", "read"],
      environment: "test",
      expireTime,
      metadata: { owner: "ops", "cost.center": "42" },
    });
    expect(issued.token).toMatch(/^lk_test_[0-9A-Za-z]{49}$/);
    const { key } = await tokens().get({ keyId: issued.key?.id ?? "" });
    expect(key).toEqual(issued.key);
    expect(key).toMatchObject({
      teamId,
      name: "padded name",
      scopes: ["read", "chats:write"],
      environment: "test",
      hint: `lk_test_…${issued.token.slice(-4)}`,
      enabled: true,
      createdBy: "root",
      metadata: { owner: "ops", "cost.center": "42" },
      rotatedFrom: "",
    });
    expect(timestampDate(key?.expireTime ?? expireTime).getTime()).toBe(timestampDate(expireTime).getTime());
    expect(JSON.stringify(key, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(
      issued.token.slice(8),
    );
  });

  it("is NOT_FOUND for a team that does not exist and for a key that does not exist", async () => {
    expect((await rpcError(tokens().issue({ teamId: "team_0000000000000000000000", name: "x" }))).code).toBe(
      Code.NotFound,
    );
    expect((await rpcError(tokens().get({ keyId: "key_0000000000000000000000" }))).code).toBe(Code.NotFound);
  });
});

describe("Update", () => {
  it("disables and enables a key: DISABLED, then VALID again", async () => {
    const { keyId, token } = await issue("toggle");
    await warm(token);
    expect((await tokens().update({ keyId, enabled: false })).key?.enabled).toBe(false);
    expect((await verify(token)).result).toBe(VerifyResult.DISABLED);
    await tokens().update({ keyId, enabled: true });
    expect((await verify(token)).result).toBe(VerifyResult.VALID);
  });

  it("changes scopes: a scope no longer held is INSUFFICIENT_SCOPE with missingScopes", async () => {
    const { keyId, token } = await issue("scoped", { scopes: ["write", "chats:write"] });
    await warm(token);
    expect((await verify(token, ["read", "chats:write"])).result).toBe(VerifyResult.VALID);
    await tokens().update({ keyId, scopes: { values: ["read"] } });
    const answer = await verify(token, ["write", "chats:write", "read"]);
    expect(answer.result).toBe(VerifyResult.INSUFFICIENT_SCOPE);
    expect(answer.missingScopes).toEqual(["write", "chats:write"]);
    expect(answer.key?.scopes).toEqual(["read"]);
    // An empty list is a change too (ScopeList tells "unset" from "empty").
    await tokens().update({ keyId, scopes: { values: [] } });
    expect((await verify(token, ["read"])).missingScopes).toEqual(["read"]);
  });

  it("changes name and metadata and leaves unset fields alone", async () => {
    const { keyId, token } = await issue("before", { metadata: { a: "1" }, scopes: ["write"] });
    const { key } = await tokens().update({ keyId, name: "after", metadata: { entries: { b: "2" } } });
    expect(key).toMatchObject({ name: "after", metadata: { b: "2" }, scopes: ["write"], enabled: true });
    expect((await verify(token)).key?.name).toBe("after");
  });

  it("refuses to change a revoked key", async () => {
    const { keyId } = await issue("gone");
    await tokens().revoke({ keyId });
    expect((await rpcError(tokens().update({ keyId, enabled: true }))).code).toBe(Code.FailedPrecondition);
  });
});

describe("Revoke", () => {
  it("answers REVOKED on the very next Verify after a run of cached VALIDs", async () => {
    const { keyId, token } = await issue("hot");
    for (let i = 0; i < 50; i++) expect((await verify(token)).result).toBe(VerifyResult.VALID);
    await tokens().revoke({ keyId });
    expect((await verify(token)).result).toBe(VerifyResult.REVOKED);
  });

  it("is a no-op the second time and keeps the first reason and time", async () => {
    const { keyId } = await issue("twice");
    const first = await tokens().revoke({ keyId, reason: "leaked" });
    const second = await tokens().revoke({ keyId, reason: "again" });
    expect(second.key?.revokeReason).toBe("leaked");
    expect(second.key?.revokeTime).toEqual(first.key?.revokeTime);
  });

  it("reports propagation when asked to wait, with no live verifiers", async () => {
    const { keyId } = await issue("waited");
    const { propagation } = await tokens().revoke({ keyId, waitTimeout: { seconds: 1n, nanos: 0 } });
    expect(propagation).toMatchObject({ liveVerifiers: 0, confirmed: 0, complete: true });
  });
});

describe("Rotate", () => {
  it("issues a replacement now and keeps the old key valid through the grace period", async () => {
    const { keyId, token } = await issue("rotating", { scopes: ["write"], metadata: { team: "x" } });
    await warm(token);
    const before = Date.now();
    const rotated = await tokens().rotate({ keyId, gracePeriod: { seconds: 60n, nanos: 0 } });
    expect(rotated.token).not.toBe(token);
    expect(rotated.key).toMatchObject({
      name: "rotating",
      scopes: ["write"],
      metadata: { team: "x" },
      rotatedFrom: keyId,
    });
    const oldExpiry = millis(rotated.previousKey?.expireTime);
    expect(oldExpiry).toBeGreaterThanOrEqual(before + 60_000 - 5);
    expect(oldExpiry).toBeLessThanOrEqual(Date.now() + 60_000);
    expect((await verify(rotated.token)).result).toBe(VerifyResult.VALID);
    expect((await verify(token)).result).toBe(VerifyResult.VALID);
  });

  it("expires the old key at once with a zero grace period", async () => {
    const { keyId, token } = await issue("rotate-now");
    await warm(token);
    const rotated = await tokens().rotate({ keyId, gracePeriod: { seconds: 0n, nanos: 0 } });
    expect((await verify(token)).result).toBe(VerifyResult.EXPIRED);
    expect((await verify(rotated.token)).result).toBe(VerifyResult.VALID);
    // An expired key cannot be rotated again; its replacement can.
    expect((await rpcError(tokens().rotate({ keyId }))).code).toBe(Code.FailedPrecondition);
    await tokens().rotate({ keyId: rotated.key?.id ?? "" });
  });

  it("never lets the old key outlive its own expiry, and the new key inherits it", async () => {
    const expiry = new Date(Date.now() + 3_600_000);
    const { keyId } = await issue("short-lived", { expireTime: timestampFromDate(expiry) });
    const rotated = await tokens().rotate({ keyId, gracePeriod: { seconds: BigInt(30 * 86_400), nanos: 0 } });
    const ms = (t: typeof rotated.key) => (t?.expireTime ? timestampDate(t.expireTime).getTime() : undefined);
    expect(ms(rotated.previousKey)).toBe(expiry.getTime());
    expect(ms(rotated.key)).toBe(expiry.getTime());
  });

  it("refuses to rotate a revoked key", async () => {
    const { keyId } = await issue("revoked-rotate");
    await tokens().revoke({ keyId });
    expect((await rpcError(tokens().rotate({ keyId }))).code).toBe(Code.FailedPrecondition);
  });
});

describe("expiry", () => {
  it("answers VALID before expire_time and EXPIRED after it, even from the cache", async () => {
    const expiresAt = Date.now() + 1_500;
    const { token } = await issue("expiring", { expireTime: timestampFromDate(new Date(expiresAt)) });
    await warm(token);
    await sleep(Math.max(0, expiresAt - Date.now() + 20));
    expect((await verify(token)).result).toBe(VerifyResult.EXPIRED);
  });
});
