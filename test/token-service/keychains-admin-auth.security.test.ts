// Who may call the keychain admin RPCs: the root key, and admin keys for their own team's
// keychains. No credential, a bad one, a key without `admin`, and a keychain's own secret are refused
// on every one, and nothing changes. KeychainService is in reflection and health on both listeners.
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "@latchkey/proto/grpc";
import { generateToken } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { digestOf, makeKeychain, masterKey, registerPackage } from "./keychain-fixtures.js";
import { rpcError } from "./rpc-error.js";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

let service: TestService;
let team: { teamId: string; adminKey: string };
let keychain: { id: string; secret: string };
const SHA = digestOf("auth package");

beforeAll(async () => {
  service = await startTestService({ settings: { keychainMasterKey: masterKey("auth") } });
  team = await service.teamWithAdmin("keychain-auth");
  keychain = await makeKeychain(service, "target", {
    teamId: team.teamId,
    secrets: { KEEP: "keep-value-0123" },
  });
  await registerPackage(service, {
    teamId: team.teamId,
    name: "@auth/pkg",
    version: "1",
    sha256: SHA,
    required: ["KEEP"],
  });
});
afterAll(() => service?.close());

function everyAdminCall(headers: Record<string, string>) {
  const client = service.keychains(null);
  const options = { headers };
  const keychainId = keychain.id;
  return {
    CreateKeychain: () => client.createKeychain({ teamId: team.teamId, name: "x" }, options),
    ListKeychains: () => client.listKeychains({ teamId: team.teamId }, options),
    RevokeKeychain: () => client.revokeKeychain({ keychainId }, options),
    PutSecret: () => client.putSecret({ keychainId, name: "KEEP", value: "overwritten" }, options),
    ListSecretNames: () => client.listSecretNames({ keychainId }, options),
    DeleteSecret: () => client.deleteSecret({ keychainId, name: "KEEP" }, options),
    RegisterPackageVersion: () =>
      client.registerPackageVersion(
        {
          teamId: team.teamId,
          packageVersion: { name: "@auth/pkg", version: "2", sha256: SHA, public: true },
        },
        options,
      ),
    GrantPackage: () =>
      client.grantPackage(
        { keychainId, packageName: "@auth/pkg", version: "1", sha256: SHA, names: ["KEEP"] },
        options,
      ),
    RevokeGrant: () => client.revokeGrant({ keychainId, packageName: "@auth/pkg" }, options),
    ListGrants: () => client.listGrants({ keychainId }, options),
  };
}

async function expectUntouched() {
  const listed = await service.keychains().listKeychains({ teamId: team.teamId });
  expect(listed.keychains.map((each) => each.id)).toEqual([keychain.id]);
  expect(listed.keychains[0]?.revokeTime).toBeUndefined();
  expect(
    (await service.keychains().listSecretNames({ keychainId: keychain.id })).secrets.map((s) => s.name),
  ).toEqual(["KEEP"]);
  const { rows } = await service.sql.query(
    "select count(*)::int as n from package_versions where version = '2'",
  );
  expect(rows[0]?.n).toBe(0);
}

describe("the keychain admin RPCs", () => {
  it.each([
    ["no Authorization header", {}],
    ["a garbage bearer", { authorization: "Bearer garbage" }],
    [
      "a well-formed key that was never issued",
      { authorization: `Bearer ${generateToken({ prefix: "lk", environment: "live" })}` },
    ],
    ["the root key with one character changed", { authorization: `Bearer ${ROOT_KEY.slice(0, -1)}X` }],
  ])("are UNAUTHENTICATED with %s", async (_what, headers) => {
    for (const [rpc, call] of Object.entries(everyAdminCall(headers))) {
      expect({ rpc, code: Code[(await rpcError(call())).code] }).toEqual({ rpc, code: "Unauthenticated" });
    }
    await expectUntouched();
  });

  it("are PERMISSION_DENIED with a key without admin, and with the keychain's own secret", async () => {
    const { token } = await service
      .tokens()
      .issue({ teamId: team.teamId, name: "writer", scopes: ["write"] });
    for (const bearer of [token, keychain.secret]) {
      for (const [rpc, call] of Object.entries(everyAdminCall({ authorization: `Bearer ${bearer}` }))) {
        expect({ rpc, code: Code[(await rpcError(call())).code] }).toEqual({ rpc, code: "PermissionDenied" });
      }
    }
    await expectUntouched();
  });
});

describe("KeychainService on both listeners", () => {
  const run = promisify(execFile);
  const BUF = resolve("node_modules/.bin/buf");

  it.each(["grpc", "connect"] as const)(
    "is found by reflection on the %s listener and is SERVING",
    async (listener) => {
      const port = listener === "grpc" ? service.handle.grpcPort : service.handle.port;
      const { stdout } = await run(
        BUF,
        [
          "curl",
          "--protocol",
          "grpc",
          "--http2-prior-knowledge",
          "-H",
          `Authorization: Bearer ${ROOT_KEY}`,
          "-d",
          JSON.stringify({ keychainId: keychain.id }),
          `http://127.0.0.1:${port}/latchkey.v1.KeychainService/ListSecretNames`,
        ],
        { timeout: 20_000 },
      );
      expect(JSON.parse(stdout)).toMatchObject({ secrets: [{ name: "KEEP" }] });
      const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
      const { status } = await health.check({ service: "latchkey.v1.KeychainService" });
      expect(status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    },
  );
});
