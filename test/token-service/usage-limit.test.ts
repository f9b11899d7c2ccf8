// Usage-limited keys (Unkey's "remaining"): N uses, exact under concurrency,
// checked at the token-service on every Verify and never answered from a
// verifier's cache; refilled per UTC day or month; set and removed by Issue/Update.
import { Code } from "@connectrpc/connect";
import { UsageRefillInterval, VerifyResult } from "@latchkey/proto";
import { createVerifier, type Verifier } from "@latchkey/verifier";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../harness/wait.js";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

let service: TestService;
let teamId: string;
const verifiers: Verifier[] = [];

beforeAll(async () => {
  service = await startTestService();
  teamId = (await service.teams().createTeam({ name: "limited" })).team?.id ?? "";
});
afterAll(async () => {
  for (const v of verifiers) await v.close();
  await service?.close();
});

function verifier(): Verifier {
  const created = createVerifier({
    tokenService: service.grpcUrl,
    events: service.handle.bus,
    ttlMs: 600_000,
  });
  verifiers.push(created);
  return created;
}

const limited = (remaining: number, refill?: { interval: UsageRefillInterval; amount: number }) =>
  service.tokens().issue({
    teamId,
    name: `limited-${remaining}`,
    scopes: ["read"],
    usageLimit: {
      remaining: BigInt(remaining),
      ...(refill ? { refillInterval: refill.interval, refillAmount: BigInt(refill.amount) } : {}),
    },
  });

describe("a key with 20 uses", () => {
  it("admits exactly 20 of 50 concurrent Verify calls, then answers USAGE_EXCEEDED with the key", async () => {
    const { key, token } = await limited(20);
    expect(key?.usageLimit?.remaining).toBe(20n);
    const results = await Promise.all(
      Array.from({ length: 50 }, () => service.tokens(null).verify({ token })),
    );
    const valid = results.filter((r) => r.result === VerifyResult.VALID);
    expect(valid).toHaveLength(20);
    expect(results.filter((r) => r.result === VerifyResult.USAGE_EXCEEDED)).toHaveLength(30);
    // Each VALID answer says how many uses were left after it: 19 down to 0, once each.
    expect(valid.map((r) => Number(r.key?.usageLimit?.remaining)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, i) => i),
    );
    const exceeded = results.find((r) => r.result === VerifyResult.USAGE_EXCEEDED);
    expect(exceeded?.key?.id).toBe(key?.id);
    expect((await service.tokens().get({ keyId: key?.id ?? "" })).key?.usageLimit?.remaining).toBe(0n);
  });

  it("admits exactly 20 of 50 concurrent verifications through one verifier: no single-flight, no cache", async () => {
    const { token } = await limited(20);
    const v = verifier();
    await v.ready();
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, () => v.verify(token, { requiredScopes: ["read"] })),
    );
    expect(outcomes.filter((o) => o.ok)).toHaveLength(20);
    expect(outcomes.filter((o) => o.code === "USAGE_EXCEEDED")).toHaveLength(30);
    expect(v.verifyCached(token)).toBeUndefined();
    expect(v.status().cacheEntries).toBe(0);
  });
});

describe("refills", () => {
  it("tops the uses up once a new UTC day has begun since the last refill", async () => {
    const { key, token } = await limited(1, { interval: UsageRefillInterval.DAILY, amount: 3 });
    expect(key?.usageLimit?.nextRefillTime).toBeDefined();
    expect((await service.tokens(null).verify({ token })).result).toBe(VerifyResult.VALID);
    expect((await service.tokens(null).verify({ token })).result).toBe(VerifyResult.USAGE_EXCEEDED);
    await service.sql.query(
      "update api_keys set refilled_at = refilled_at - interval '1 day' where id = $1",
      [key?.id],
    );
    const refilled = await service.tokens(null).verify({ token });
    expect(refilled.result).toBe(VerifyResult.VALID);
    expect(refilled.key?.usageLimit?.remaining).toBe(2n);
  });
});

describe("Update", () => {
  it("sets a limit on a key a verifier has cached (the cached answer goes) and removes it again", async () => {
    const issued = await service.tokens().issue({ teamId, name: "later", scopes: ["read"] });
    const keyId = issued.key?.id ?? "";
    const v = verifier();
    await v.ready();
    expect((await v.verify(issued.token)).ok).toBe(true);
    expect(v.verifyCached(issued.token)?.ok).toBe(true);
    await service.tokens().update({ keyId, usageLimit: { remaining: 2n } });
    await eventually(
      () => v.verifyCached(issued.token),
      (answer) => answer === undefined,
      {
        what: "the cached answer dropped",
      },
    );
    expect((await v.verify(issued.token)).ok).toBe(true);
    expect((await v.verify(issued.token)).ok).toBe(true);
    expect((await v.verify(issued.token)).code).toBe("USAGE_EXCEEDED");
    const updated = await service.tokens().update({ keyId, removeUsageLimit: true });
    expect(updated.key?.usageLimit).toBeUndefined();
    await eventually(
      () => v.verify(issued.token),
      (o) => o.ok,
      { what: "unlimited again" },
    );
  });

  it("lets a team admin limit a stronger key (a reduction) but not remove the limit", async () => {
    const admin = await service.teamWithAdmin("limit-admin");
    const strong = await service
      .tokens()
      .issue({ teamId: admin.teamId, name: "strong", scopes: ["admin", "billing:refund"] });
    const keyId = strong.key?.id ?? "";
    const asAdmin = service.tokens(admin.adminKey);
    await asAdmin.update({ keyId, usageLimit: { remaining: 10n } });
    await asAdmin.update({ keyId, usageLimit: { remaining: 5n } });
    const raise = await rpcError(asAdmin.update({ keyId, usageLimit: { remaining: 50n } }));
    expect(raise.code).toBe(Code.PermissionDenied);
    expect(raise.rawMessage).toContain("usage_limit");
    const remove = await rpcError(asAdmin.update({ keyId, removeUsageLimit: true }));
    expect(remove.code).toBe(Code.PermissionDenied);
    expect(remove.rawMessage).toContain("remove_usage_limit");
  });
});

describe("bad usage limits", () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["negative remaining", { remaining: -1n }, "usage_limit.remaining: must be between 0 and"],
    ["too many uses", { remaining: 10n ** 13n }, "usage_limit.remaining: must be between 0 and"],
    [
      "an amount without an interval",
      { remaining: 1n, refillAmount: 5n },
      "usage_limit.refill_amount: needs a refill_interval",
    ],
    [
      "an interval without an amount",
      { remaining: 1n, refillInterval: UsageRefillInterval.DAILY },
      "usage_limit.refill_amount: must be between 1 and",
    ],
    [
      "an unknown interval",
      { remaining: 1n, refillInterval: 7, refillAmount: 1n },
      "usage_limit.refill_interval: must be DAILY or MONTHLY",
    ],
  ];
  it.each(cases)("Issue refuses %s", async (_name, usageLimit, message) => {
    const error = await rpcError(service.tokens().issue({ teamId, name: "bad", usageLimit }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain(message);
  });

  it("Update refuses a limit and its removal together", async () => {
    const { key } = await limited(3);
    const error = await rpcError(
      service
        .tokens()
        .update({ keyId: key?.id ?? "", usageLimit: { remaining: 1n }, removeUsageLimit: true }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain("remove_usage_limit: cannot be set together with usage_limit");
  });
});
