// Who may call the admin RPCs: the root key, and admin keys for their own
// team only. Every refusal is UNAUTHENTICATED or PERMISSION_DENIED (NOT_FOUND
// for another team's key, so its existence is not confirmed).
import { setTimeout as sleep } from "node:timers/promises";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectError } from "@connectrpc/connect";
import { VerifyResult } from "@latchkey/proto";
import { generateToken, TOKEN_PATTERN } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabaseUrl } from "../harness/index.js";
import { rpcError } from "./rpc-error.js";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

let service: TestService;
let teamA: { teamId: string; adminKey: string; adminKeyId: string };
let teamB: { teamId: string; adminKey: string; adminKeyId: string };
let keyB: { id: string; token: string };
beforeAll(async () => {
  service = await startTestService();
  teamA = await service.teamWithAdmin("team-a");
  teamB = await service.teamWithAdmin("team-b");
  const issued = await service.tokens().issue({ teamId: teamB.teamId, name: "b-worker", scopes: ["write"] });
  keyB = { id: issued.key?.id ?? "", token: issued.token };
});
afterAll(() => service?.close());

/** One call of every admin RPC, made with `bearer` (raw Authorization value when `raw`). */
function everyAdminCall(headers: Record<string, string>) {
  const tokens = service.tokens(null);
  const teams = service.teams(null);
  const options = { headers };
  return {
    Issue: () => tokens.issue({ teamId: teamA.teamId, name: "x" }, options),
    Revoke: () => tokens.revoke({ keyId: keyB.id }, options),
    Rotate: () => tokens.rotate({ keyId: keyB.id }, options),
    Get: () => tokens.get({ keyId: keyB.id }, options),
    List: () => tokens.list({ teamId: teamB.teamId }, options),
    Update: () => tokens.update({ keyId: keyB.id, enabled: false }, options),
    ImportKeys: () =>
      tokens.importKeys(
        {
          keys: [
            {
              externalId: "intruder",
              teamId: teamB.teamId,
              name: "x",
              secret: { case: "tokenSha256", value: "00".repeat(32) },
            },
          ],
        },
        options,
      ),
    CreateTeam: () => teams.createTeam({ name: "intruders" }, options),
    ListTeams: () => teams.listTeams({}, options),
  };
}

async function expectKeyBUntouched() {
  const { key } = await service.tokens().get({ keyId: keyB.id });
  expect(key?.enabled).toBe(true);
  expect(key?.revokeTime).toBeUndefined();
  expect(key?.expireTime).toBeUndefined();
  expect((await service.tokens(null).verify({ token: keyB.token })).result).toBe(VerifyResult.VALID);
}

describe("a caller without valid credentials", () => {
  const unknownKey = generateToken({ prefix: "lk", environment: "live" });
  it.each([
    ["no Authorization header", {}],
    ["the Basic scheme", { authorization: `Basic ${Buffer.from(`root:${ROOT_KEY}`).toString("base64")}` }],
    ["a bare Bearer", { authorization: "Bearer" }],
    ["a garbage bearer", { authorization: "Bearer garbage" }],
    ["the root key with one character changed", { authorization: `Bearer ${ROOT_KEY.slice(0, -1)}X` }],
    ["the root key with a suffix", { authorization: `Bearer ${ROOT_KEY}x` }],
    ["a well-formed key that was never issued", { authorization: `Bearer ${unknownKey}` }],
    ["an oversized header", { authorization: `Bearer ${"a".repeat(10_000)}` }],
  ])("is UNAUTHENTICATED on every admin RPC with %s", async (_what, headers) => {
    for (const [rpc, call] of Object.entries(everyAdminCall(headers))) {
      const error = await rpcError(call());
      expect({ rpc, code: Code[error.code] }).toEqual({ rpc, code: Code[Code.Unauthenticated] });
    }
    await expectKeyBUntouched();
  });

  it("still gets Verify answered: it needs no credentials", async () => {
    const response = await service
      .tokens(null)
      .verify({ token: keyB.token }, { headers: { authorization: "Bearer garbage" } });
    expect(response.result).toBe(VerifyResult.VALID);
  });
});

describe("a key without scope admin", () => {
  it("is PERMISSION_DENIED on every admin RPC", async () => {
    const { token } = await service
      .tokens()
      .issue({ teamId: teamB.teamId, name: "writer", scopes: ["write", "chats:write"] });
    for (const [rpc, call] of Object.entries(everyAdminCall({ authorization: `Bearer ${token}` }))) {
      const error = await rpcError(call());
      expect({ rpc, code: Code[error.code] }).toEqual({ rpc, code: Code[Code.PermissionDenied] });
    }
    await expectKeyBUntouched();
  });
});

describe("an admin key of team A", () => {
  const asA = () => service.tokens(teamA.adminKey);

  it("manages keys of its own team", async () => {
    const issued = await asA().issue({ teamId: teamA.teamId, name: "a-worker", scopes: ["read"] });
    expect(issued.key?.createdBy).toBe(teamA.adminKeyId);
    expect((await asA().get({ keyId: issued.key?.id ?? "" })).key?.name).toBe("a-worker");
    const listed = await asA().list({});
    expect(listed.keys.map((k) => k.teamId).every((t) => t === teamA.teamId)).toBe(true);
    expect(listed.keys.map((k) => k.id)).toContain(issued.key?.id);
    await asA().update({ keyId: issued.key?.id ?? "", name: "a-worker-2" });
    const rotated = await asA().rotate({ keyId: issued.key?.id ?? "" });
    await asA().revoke({ keyId: rotated.key?.id ?? "" });
  });

  it("is PERMISSION_DENIED issuing or listing in team B", async () => {
    const issue = await rpcError(asA().issue({ teamId: teamB.teamId, name: "sneaky" }));
    expect(issue.code).toBe(Code.PermissionDenied);
    const list = await rpcError(asA().list({ teamId: teamB.teamId }));
    expect(list.code).toBe(Code.PermissionDenied);
    const listed = await service.tokens().list({ teamId: teamB.teamId });
    expect(listed.keys.map((k) => k.name)).not.toContain("sneaky");
  });

  it("gets NOT_FOUND for team B's key on Get, Revoke, Update and Rotate, exactly as for a key that does not exist", async () => {
    const missing = "key_0000000000000000000000";
    const pairs: Array<[string, (keyId: string) => Promise<unknown>]> = [
      ["Get", (keyId) => asA().get({ keyId })],
      ["Revoke", (keyId) => asA().revoke({ keyId })],
      ["Update", (keyId) => asA().update({ keyId, enabled: false })],
      ["Rotate", (keyId) => asA().rotate({ keyId })],
    ];
    for (const [rpc, call] of pairs) {
      const other = await rpcError(call(keyB.id));
      const absent = await rpcError(call(missing));
      expect({ rpc, code: Code[other.code] }).toEqual({ rpc, code: Code[Code.NotFound] });
      expect(other.rawMessage.replace(keyB.id, "<id>")).toBe(absent.rawMessage.replace(missing, "<id>"));
    }
    await expectKeyBUntouched();
  });

  it("is PERMISSION_DENIED on TeamService", async () => {
    expect((await rpcError(service.teams(teamA.adminKey).createTeam({ name: "a-made" }))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await rpcError(service.teams(teamA.adminKey).listTeams({}))).code).toBe(Code.PermissionDenied);
  });

  it("cannot grant scopes it does not hold, on Issue or Update", async () => {
    const issue = await rpcError(
      asA().issue({ teamId: teamA.teamId, name: "x", scopes: ["read", "billing:write"] }),
    );
    expect(issue.code).toBe(Code.PermissionDenied);
    expect(issue.rawMessage).toContain("billing:write");
    const { key } = await asA().issue({
      teamId: teamA.teamId,
      name: "plain",
      scopes: ["read", "write", "admin"],
    });
    const update = await rpcError(
      asA().update({ keyId: key?.id ?? "", scopes: { values: ["billing:write"] } }),
    );
    expect(update.code).toBe(Code.PermissionDenied);
    expect((await asA().get({ keyId: key?.id ?? "" })).key?.scopes).toEqual(["read", "write", "admin"]);
  });

  it("can grant a resource scope it holds", async () => {
    const admin = await service.teamWithAdmin("team-c", ["chats:write"]);
    const { key } = await service
      .tokens(admin.adminKey)
      .issue({ teamId: admin.teamId, name: "chat", scopes: ["chats:write", "read"] });
    expect(key?.scopes).toEqual(["chats:write", "read"]);
  });
});

describe("an admin key that stopped being valid", () => {
  async function freshAdmin(name: string, expireTime?: Date) {
    const { key, token } = await service.tokens().issue({
      teamId: teamA.teamId,
      name,
      scopes: ["admin"],
      ...(expireTime ? { expireTime: timestampFromDate(expireTime) } : {}),
    });
    expect((await service.tokens(token).list({})).keys.length).toBeGreaterThan(0);
    return { keyId: key?.id ?? "", token };
  }
  const refusal = async (token: string): Promise<ConnectError> => rpcError(service.tokens(token).list({}));

  it("is UNAUTHENTICATED once revoked, disabled or expired, with one message for all", async () => {
    const expiresAt = Date.now() + 1_500;
    const expiring = await freshAdmin("expiring", new Date(expiresAt));
    const revoked = await freshAdmin("revoked");
    await service.tokens().revoke({ keyId: revoked.keyId });
    const disabled = await freshAdmin("disabled");
    await service.tokens().update({ keyId: disabled.keyId, enabled: false });
    await sleep(Math.max(0, expiresAt - Date.now() + 20));

    const errors = await Promise.all([
      refusal(revoked.token),
      refusal(disabled.token),
      refusal(expiring.token),
    ]);
    const unknown = await refusal(generateToken({ prefix: "lk", environment: "live" }));
    for (const error of errors) {
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toBe(unknown.rawMessage);
    }

    // Re-enabling a disabled admin key lets it back in; a revoked one never.
    await service.tokens().update({ keyId: disabled.keyId, enabled: true });
    expect((await service.tokens(disabled.token).list({})).keys.length).toBeGreaterThan(0);
    expect((await rpcError(service.tokens().update({ keyId: revoked.keyId, enabled: true }))).code).toBe(
      Code.FailedPrecondition,
    );
  });
});

describe("the generated root key", () => {
  it("is returned once on the first start, keeps working after a restart, and yields to LATCHKEY_ROOT_KEY", async () => {
    const databaseUrl = await freshDatabaseUrl("root");
    const first = await startTestService({ databaseUrl, rootKey: null });
    const generated = first.handle.generatedRootKey;
    try {
      expect(generated).toMatch(new RegExp(`^${TOKEN_PATTERN.source}$`));
      await first.teams(generated).createTeam({ name: "made-by-generated-root" });
    } finally {
      await first.close();
    }
    // Only its hash is stored.
    const second = await startTestService({ databaseUrl, rootKey: null });
    try {
      expect(second.handle.generatedRootKey).toBeUndefined();
      const { teams } = await second.teams(generated).listTeams({});
      expect(teams.map((t) => t.name)).toEqual(["made-by-generated-root"]);
      const { rows } = await second.sql.query("select token_hash from root_credential");
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain(generated);
    } finally {
      await second.close();
    }
    // A root key from the environment replaces the generated one.
    const third = await startTestService({ databaseUrl });
    try {
      expect(third.handle.generatedRootKey).toBeUndefined();
      expect((await third.teams(ROOT_KEY).listTeams({})).teams).toHaveLength(1);
      expect((await rpcError(third.teams(generated).listTeams({}))).code).toBe(Code.Unauthenticated);
    } finally {
      await third.close();
    }
  });
});
