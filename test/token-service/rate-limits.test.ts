// A key's own rate limits and tier on a real token-service (PostgreSQL): set at Issue/Update, kept
// by Rotate, refused when hostile, and counted exactly by Verify across two replicas when asked.
import { Code, ConnectError } from "@connectrpc/connect";
import { VerifyResult } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestService, type TestService } from "./start.js";

let service: TestService;
let replica: TestService;
let teamId: string;

const hourly = (limit: number, name = "hourly") => ({
  name,
  limit: BigInt(limit),
  window: { seconds: 3600n, nanos: 0 },
});

beforeAll(async () => {
  service = await startTestService();
  replica = await startTestService({ databaseUrl: service.databaseUrl });
  teamId = (await service.teams().createTeam({ name: "rate-limits" })).team?.id ?? "";
});

afterAll(async () => {
  await replica?.close();
  await service?.close();
});

async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  const error = await call.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}

describe("a key's own rate limits", () => {
  it("are set at Issue and Update, kept by Rotate, and removed by an empty list", async () => {
    const issued = await service
      .tokens()
      .issue({ teamId, name: "limited", scopes: ["read"], rateLimits: [hourly(100)], tier: "verified" });
    expect(issued.key?.rateLimits).toEqual([expect.objectContaining({ name: "hourly", limit: 100n })]);
    expect(issued.key?.tier).toBe("verified");
    const keyId = issued.key?.id ?? "";
    const updated = await service
      .tokens()
      .update({ keyId, rateLimits: { values: [hourly(5), hourly(50, "daily")] }, tier: "connected" });
    expect(updated.key?.rateLimits.map((limit) => [limit.name, limit.limit])).toEqual([
      ["hourly", 5n],
      ["daily", 50n],
    ]);
    expect(updated.key?.tier).toBe("connected");
    const rotated = await service.tokens().rotate({ keyId });
    expect(rotated.key?.rateLimits).toHaveLength(2);
    expect(rotated.key?.tier).toBe("connected");
    const cleared = await service
      .tokens()
      .update({ keyId: rotated.key?.id ?? "", rateLimits: { values: [] }, tier: "" });
    expect(cleared.key?.rateLimits).toEqual([]);
    expect(cleared.key?.tier).toBe("");
  });

  it.each([
    ["rate_limits[0].limit", { rateLimits: [{ ...hourly(1), limit: 0n }] }],
    ["rate_limits[0].limit", { rateLimits: [{ ...hourly(1), limit: -3n }] }],
    ["rate_limits[0].limit", { rateLimits: [{ ...hourly(1), limit: 10n ** 12n }] }],
    ["rate_limits[0].window: is required", { rateLimits: [{ name: "x", limit: 1n }] }],
    ["rate_limits[0].window", { rateLimits: [{ ...hourly(1), window: { seconds: 0n, nanos: 0 } }] }],
    ["rate_limits[0].window", { rateLimits: [{ ...hourly(1), window: { seconds: 172_800n, nanos: 0 } }] }],
    ["rate_limits[0].window", { rateLimits: [{ ...hourly(1), window: { seconds: 1n, nanos: 5 } }] }],
    ["rate_limits[0].name", { rateLimits: [{ ...hourly(1), name: "Bad Name" }] }],
    ['rate_limits[1].name: duplicate name "hourly"', { rateLimits: [hourly(1), hourly(2)] }],
    ["rate_limits: at most 8", { rateLimits: Array.from({ length: 9 }, (_, i) => hourly(1, `l${i}`)) }],
    ["tier:", { tier: "Gold Tier" }],
    ["tier:", { tier: "x".repeat(40) }],
  ])("refuses at Issue, naming the field: %s", async (message, fields) => {
    const error = await refusal(service.tokens().issue({ teamId, name: "bad", scopes: ["read"], ...fields }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain(message);
  });

  it("may not be changed by an admin key on a key holding scopes it lacks", async () => {
    const team = await service.teamWithAdmin("rl-team");
    const target = await service
      .tokens()
      .issue({ teamId: team.teamId, name: "target", scopes: ["admin", "billing:refund"] });
    const error = await refusal(
      service
        .tokens(team.adminKey)
        .update({ keyId: target.key?.id ?? "", rateLimits: { values: [hourly(1_000_000)] } }),
    );
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toContain("rate_limits.values");
    const tier = await refusal(
      service.tokens(team.adminKey).update({ keyId: target.key?.id ?? "", tier: "connected" }),
    );
    expect(tier.code).toBe(Code.PermissionDenied);
  });
});

describe("Verify with count_rate_limit", () => {
  it("counts exactly across two replicas and answers RATE_LIMITED with remaining and reset", async () => {
    const { token } = await service
      .tokens()
      .issue({ teamId, name: "counted", scopes: ["read"], rateLimits: [hourly(4)] });
    const replicas = [service, replica, service, replica];
    const answers = await Promise.all(
      replicas.map((each) => each.tokens(null).verify({ token, countRateLimit: true })),
    );
    expect(answers.map((answer) => answer.result)).toEqual(Array(4).fill(VerifyResult.VALID));
    expect(answers.map((answer) => Number(answer.rateLimits[0]?.remaining)).sort()).toEqual([0, 1, 2, 3]);
    const over = await replica.tokens(null).verify({ token, countRateLimit: true });
    expect(over.result).toBe(VerifyResult.RATE_LIMITED);
    expect(over.key?.name).toBe("counted");
    const state = over.rateLimits[0];
    expect([state?.name, state?.limit, state?.remaining]).toEqual(["hourly", 4n, 0n]);
    // Four counted this hour: one more fits once the next hour weighs them at 3 of 4, 3600–4500 s away.
    const reset = Number(state?.reset?.seconds ?? 0);
    expect(reset).toBeGreaterThan(3600 - (Date.now() % 3_600_000) / 1000 - 1);
    expect(reset).toBeLessThanOrEqual(7200);
    // A refused call is not counted, and a call that does not ask is neither counted nor refused.
    const plain = await service.tokens(null).verify({ token });
    expect(plain.result).toBe(VerifyResult.VALID);
    expect(plain.rateLimits).toEqual([]);
    const rows = await service.sql.query(
      "select sum(count)::int as n from rate_limit_counts where key_id = $1",
      [over.key?.id],
    );
    expect(rows.rows[0].n).toBe(4);
  });

  it("does not count a key without limits, or a key that fails", async () => {
    const { token } = await service.tokens().issue({ teamId, name: "free", scopes: ["read"] });
    const answer = await service.tokens(null).verify({ token, countRateLimit: true });
    expect(answer.result).toBe(VerifyResult.VALID);
    expect(answer.rateLimits).toEqual([]);
    const scoped = await service
      .tokens()
      .issue({ teamId, name: "scoped", scopes: ["read"], rateLimits: [hourly(1)] });
    const insufficient = await service
      .tokens(null)
      .verify({ token: scoped.token, requiredScopes: ["write"], countRateLimit: true });
    expect(insufficient.result).toBe(VerifyResult.INSUFFICIENT_SCOPE);
    expect((await service.tokens(null).verify({ token: scoped.token, countRateLimit: true })).result).toBe(
      VerifyResult.VALID,
    );
  });
});
