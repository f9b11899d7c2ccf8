// A key's owner and environment label on a real token-service (PostgreSQL): set at Issue, changed by
// Update (the owner as a grant), kept by Rotate, returned by Verify, refused when hostile.
import { Code } from "@connectrpc/connect";
import { VerifyResult } from "@latchkey/proto";
import { parseToken } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError as refusal } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

let service: TestService;
let teamId: string;

beforeAll(async () => {
  service = await startTestService();
  teamId = (await service.teams().createTeam({ name: "owner-environment" })).team?.id ?? "";
});

afterAll(async () => {
  await service?.close();
});

describe("environment labels", () => {
  it("are free-form; the token carries test for test and live for every other label", async () => {
    for (const [label, segment] of [
      ["", "live"],
      ["live", "live"],
      ["test", "test"],
      ["prod", "live"],
      ["staging", "live"],
      ["dev-eu_2", "live"],
    ] as const) {
      const issued = await service
        .tokens()
        .issue({ teamId, name: `env-${label}`, scopes: ["read"], environment: label });
      expect(issued.key?.environment).toBe(label === "" ? "live" : label);
      const parsed = parseToken(issued.token);
      expect(parsed.ok && parsed.value.environment).toBe(segment);
      const verified = await service.tokens().verify({ token: issued.token });
      expect(verified.result).toBe(VerifyResult.VALID);
      expect(verified.key?.environment).toBe(label === "" ? "live" : label);
    }
  });

  it.each(["Prod", "prod env", "pröd", "-prod", "1prod", "a".repeat(33), "prod\n", "prod/x"])(
    "refuses %j with INVALID_ARGUMENT naming the field",
    async (environment) => {
      const error = await refusal(
        service.tokens().issue({ teamId, name: "bad-env", scopes: ["read"], environment }),
      );
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/^environment: /);
    },
  );
});

describe("owners", () => {
  it("are set at Issue, kept by Rotate, returned by Verify, changed and removed by Update", async () => {
    const issued = await service
      .tokens()
      .issue({ teamId, name: "agent-key", scopes: ["write"], environment: "prod", owner: "agent-42" });
    expect(issued.key?.owner).toBe("agent-42");
    const keyId = issued.key?.id ?? "";
    expect((await service.tokens().verify({ token: issued.token })).key?.owner).toBe("agent-42");
    const rotated = await service.tokens().rotate({ keyId });
    expect(rotated.key).toMatchObject({ owner: "agent-42", environment: "prod" });
    const newId = rotated.key?.id ?? "";
    expect(
      (await service.tokens().update({ keyId: newId, owner: "user:alice@example.com" })).key?.owner,
    ).toBe("user:alice@example.com");
    expect((await service.tokens().update({ keyId: newId, owner: "" })).key?.owner).toBe("");
    const stored = await service.sql.query<{ owner: string | null }>(
      "select owner from api_keys where id = $1",
      [newId],
    );
    expect(stored.rows[0]?.owner).toBeNull();
  });

  it.each([
    "a/b",
    "a%2Fb",
    "alice.",
    ".",
    "..",
    ".alice",
    "a b",
    "a;b",
    "a?b",
    "a#b",
    "a\\b",
    "ålice",
    "alice\n",
    "a".repeat(129),
    "{owner}",
  ])("refuses the owner %j at Issue and Update", async (owner) => {
    const atIssue = await refusal(
      service.tokens().issue({ teamId, name: "bad-owner", scopes: ["read"], owner }),
    );
    expect(atIssue.code).toBe(Code.InvalidArgument);
    expect(atIssue.rawMessage).toMatch(/^owner: /);
    const { key } = await service.tokens().issue({ teamId, name: "to-update", scopes: ["read"] });
    const atUpdate = await refusal(service.tokens().update({ keyId: key?.id ?? "", owner }));
    expect(atUpdate.code).toBe(Code.InvalidArgument);
  });

  it("accepts 128 characters, and an owner change is a grant for an admin key", async () => {
    expect(
      (await service.tokens().issue({ teamId, name: "long", scopes: ["read"], owner: "a".repeat(128) })).key
        ?.owner,
    ).toHaveLength(128);
    const team = await service.teamWithAdmin("owner-grants");
    const strong = await service
      .tokens()
      .issue({ teamId: team.teamId, name: "strong", scopes: ["billing:refund"] });
    const admin = service.tokens(team.adminKey);
    const denied = await refusal(admin.update({ keyId: strong.key?.id ?? "", owner: "agent-1" }));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.rawMessage).toMatch(/^owner: /);
    const weak = await admin.issue({ teamId: team.teamId, name: "weak", scopes: ["read"] });
    expect((await admin.update({ keyId: weak.key?.id ?? "", owner: "agent-1" })).key?.owner).toBe("agent-1");
  });
});
