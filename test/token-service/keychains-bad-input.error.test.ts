// Every KeychainService field with missing, oversized and malformed values: each is an
// INVALID_ARGUMENT whose message starts with the field to fix (and never quotes a secret value);
// unknown fields are refused; ResolveSecrets without a keychain secret is UNAUTHENTICATED; and
// nothing the refused calls carried was stored.
import { create } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  CreateKeychainRequestSchema,
  GrantPackageRequestSchema,
  KeychainService,
  PutSecretRequestSchema,
  RegisterPackageVersionRequestSchema,
  RequiredSecretSchema,
  ResolveSecretsRequestSchema,
} from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { digestOf, makeKeychain, masterKey, registerPackage } from "./keychain-fixtures.js";
import { postConnect } from "./raw-calls.js";
import { rpcError } from "./rpc-error.js";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

const SECRET_VALUE = "sk_live_bad-input-value-must-never-be-echoed-0123";
const SHA = digestOf("bad-input package");
const PACKAGE = "@bad/input";

let service: TestService;
let teamId: string;
let keychainId: string;
let keychainSecret: string;
beforeAll(async () => {
  service = await startTestService({ settings: { keychainMasterKey: masterKey("bad") } });
  teamId = (await service.teams().createTeam({ name: "keychain-bad-input" })).team?.id ?? "";
  const keychain = await makeKeychain(service, "target", { teamId, secrets: { KEEP: "keep-0123456789" } });
  keychainId = keychain.id;
  keychainSecret = keychain.secret;
  await registerPackage(service, {
    teamId,
    name: PACKAGE,
    version: "1.0.0",
    sha256: SHA,
    required: ["KEEP"],
  });
});
afterAll(() => service?.close());

const kc = () => service.keychains();
const long = (n: number, c = "a") => c.repeat(n);
const BAD_KC = "kc_../../etc";
const many = (n: number) => Array.from({ length: n }, (_, i) => `NAME_${i}`);
const version = (fields: Record<string, unknown>) => ({
  teamId,
  packageVersion: { name: PACKAGE, version: "9.9.9", sha256: SHA, public: true, required: [], ...fields },
});
const grant = (fields: Record<string, unknown>) => ({
  keychainId,
  packageName: PACKAGE,
  version: "1.0.0",
  sha256: SHA,
  names: ["KEEP"],
  ...fields,
});
const presented = (fields: Record<string, unknown>) => ({
  packageName: PACKAGE,
  version: "1.0.0",
  sha256: SHA,
  ...fields,
});

// [description, call, the field the message must start with]
type Case = [string, () => Promise<unknown>, string];

const cases: Record<string, Case[]> = {
  CreateKeychain: [
    ["missing team_id", () => kc().createKeychain({ name: "n" }), "team_id"],
    ["malformed team_id", () => kc().createKeychain({ teamId: "team_x/../y", name: "n" }), "team_id"],
    ["missing name", () => kc().createKeychain({ teamId, name: " " }), "name"],
    ["name over 100 characters", () => kc().createKeychain({ teamId, name: long(101) }), "name"],
    ["name with a control character", () => kc().createKeychain({ teamId, name: "a\u0000b" }), "name"],
  ],
  ListKeychains: [
    ["root without team_id", () => kc().listKeychains({}), "team_id"],
    ["malformed team_id", () => kc().listKeychains({ teamId: "nope" }), "team_id"],
    ["page_size 501", () => kc().listKeychains({ teamId, pageSize: 501 }), "page_size"],
    ["negative page_size", () => kc().listKeychains({ teamId, pageSize: -1 }), "page_size"],
    ["a forged page_token", () => kc().listKeychains({ teamId, pageToken: "eyJhIjoxfQ" }), "page_token"],
  ],
  RevokeKeychain: [
    ["missing keychain_id", () => kc().revokeKeychain({}), "keychain_id"],
    ["malformed keychain_id", () => kc().revokeKeychain({ keychainId: BAD_KC }), "keychain_id"],
    [
      "a key id as keychain_id",
      () => kc().revokeKeychain({ keychainId: "key_0123456789012345678901" }),
      "keychain_id",
    ],
    ["reason over 500", () => kc().revokeKeychain({ keychainId, reason: long(501) }), "reason"],
    ["reason with a newline", () => kc().revokeKeychain({ keychainId, reason: "a\nb" }), "reason"],
    [
      "negative wait_timeout",
      () => kc().revokeKeychain({ keychainId, waitTimeout: { seconds: -1n, nanos: 0 } }),
      "wait_timeout",
    ],
    [
      "wait_timeout over 30 s",
      () => kc().revokeKeychain({ keychainId, waitTimeout: { seconds: 31n, nanos: 0 } }),
      "wait_timeout",
    ],
  ],
  PutSecret: [
    ["missing keychain_id", () => kc().putSecret({ name: "A", value: SECRET_VALUE }), "keychain_id"],
    [
      "malformed keychain_id",
      () => kc().putSecret({ keychainId: BAD_KC, name: "A", value: SECRET_VALUE }),
      "keychain_id",
    ],
    ["missing name", () => kc().putSecret({ keychainId, value: SECRET_VALUE }), "name"],
    [
      "a name with a dash",
      () => kc().putSecret({ keychainId, name: "STRIPE-KEY", value: SECRET_VALUE }),
      "name",
    ],
    [
      "a name starting with a digit",
      () => kc().putSecret({ keychainId, name: "1KEY", value: SECRET_VALUE }),
      "name",
    ],
    [
      "a 129-character name",
      () => kc().putSecret({ keychainId, name: long(129, "A"), value: SECRET_VALUE }),
      "name",
    ],
    ["a name with a path", () => kc().putSecret({ keychainId, name: "../KEY", value: SECRET_VALUE }), "name"],
    ["missing value", () => kc().putSecret({ keychainId, name: "A", value: "" }), "value"],
    [
      "a value over 16384 bytes",
      () => kc().putSecret({ keychainId, name: "A", value: SECRET_VALUE + long(16_384) }),
      "value",
    ],
    [
      "a value with NUL",
      () => kc().putSecret({ keychainId, name: "A", value: `${SECRET_VALUE}\0` }),
      "value",
    ],
  ],
  ListSecretNames: [
    ["missing keychain_id", () => kc().listSecretNames({}), "keychain_id"],
    ["malformed keychain_id", () => kc().listSecretNames({ keychainId: `${keychainId}x` }), "keychain_id"],
  ],
  DeleteSecret: [
    ["missing keychain_id", () => kc().deleteSecret({ name: "KEEP" }), "keychain_id"],
    ["missing name", () => kc().deleteSecret({ keychainId }), "name"],
    ["a name with a space", () => kc().deleteSecret({ keychainId, name: "KE EP" }), "name"],
  ],
  RegisterPackageVersion: [
    ["missing package_version", () => kc().registerPackageVersion({ teamId }), "package_version"],
    ["missing name", () => kc().registerPackageVersion(version({ name: "" })), "package_version.name"],
    [
      "an upper-case name",
      () => kc().registerPackageVersion(version({ name: "@User/Package" })),
      "package_version.name",
    ],
    [
      "a name with a space",
      () => kc().registerPackageVersion(version({ name: "@user/my package" })),
      "package_version.name",
    ],
    [
      "a name with ..",
      () => kc().registerPackageVersion(version({ name: "@user/..pkg" })),
      "package_version.name",
    ],
    [
      "a 215-character name",
      () => kc().registerPackageVersion(version({ name: long(215) })),
      "package_version.name",
    ],
    [
      "a scope without a name",
      () => kc().registerPackageVersion(version({ name: "@user/" })),
      "package_version.name",
    ],
    [
      "missing version",
      () => kc().registerPackageVersion(version({ version: "" })),
      "package_version.version",
    ],
    [
      "a version with a slash",
      () => kc().registerPackageVersion(version({ version: "1/2" })),
      "package_version.version",
    ],
    [
      "a 65-character version",
      () => kc().registerPackageVersion(version({ version: long(65, "1") })),
      "package_version.version",
    ],
    ["missing sha256", () => kc().registerPackageVersion(version({ sha256: "" })), "package_version.sha256"],
    [
      "a short sha256",
      () => kc().registerPackageVersion(version({ sha256: SHA.slice(1) })),
      "package_version.sha256",
    ],
    [
      "a non-hex sha256",
      () => kc().registerPackageVersion(version({ sha256: `${SHA.slice(1)}g` })),
      "package_version.sha256",
    ],
    [
      "a sha512:-prefixed digest",
      () => kc().registerPackageVersion(version({ sha256: `sha512:${SHA}` })),
      "package_version.sha256",
    ],
    [
      "65 required names",
      () => kc().registerPackageVersion(version({ required: many(65).map((name) => ({ name })) })),
      "package_version.required",
    ],
    [
      "a required name twice",
      () => kc().registerPackageVersion(version({ required: [{ name: "A" }, { name: "A" }] })),
      "package_version.required[1]",
    ],
    [
      "a malformed required name",
      () => kc().registerPackageVersion(version({ required: [{ name: "a b" }] })),
      "package_version.required[0]",
    ],
    [
      "a description over 500",
      () => kc().registerPackageVersion(version({ required: [{ name: "A", description: long(501) }] })),
      "package_version.required[0].description",
    ],
    [
      "a description with a control character",
      () => kc().registerPackageVersion(version({ required: [{ name: "A", description: "x\u001by" }] })),
      "package_version.required[0].description",
    ],
    ["malformed team_id", () => kc().registerPackageVersion({ ...version({}), teamId: "team" }), "team_id"],
    ["root without team_id", () => kc().registerPackageVersion({ ...version({}), teamId: "" }), "team_id"],
  ],
  GrantPackage: [
    ["missing keychain_id", () => kc().grantPackage(grant({ keychainId: "" })), "keychain_id"],
    ["malformed package_name", () => kc().grantPackage(grant({ packageName: "@x" })), "package_name"],
    ["missing version", () => kc().grantPackage(grant({ version: "" })), "version"],
    ["a version with a space", () => kc().grantPackage(grant({ version: "1 0" })), "version"],
    ["missing sha256", () => kc().grantPackage(grant({ sha256: "" })), "sha256"],
    ["a sha256 with spaces", () => kc().grantPackage(grant({ sha256: ` ${SHA}` })), "sha256"],
    ["no names", () => kc().grantPackage(grant({ names: [] })), "names"],
    ["65 names", () => kc().grantPackage(grant({ names: many(65) })), "names"],
    ["a name twice", () => kc().grantPackage(grant({ names: ["KEEP", "KEEP"] })), "names[1]"],
    ["an empty name", () => kc().grantPackage(grant({ names: [""] })), "names[0]"],
    ["a lower-case-with-dash name", () => kc().grantPackage(grant({ names: ["stripe-key"] })), "names[0]"],
  ],
  RevokeGrant: [
    ["missing keychain_id", () => kc().revokeGrant({ packageName: PACKAGE }), "keychain_id"],
    ["missing package_name", () => kc().revokeGrant({ keychainId }), "package_name"],
    ["malformed package_name", () => kc().revokeGrant({ keychainId, packageName: "Pkg" }), "package_name"],
  ],
  ListGrants: [
    ["missing keychain_id", () => kc().listGrants({}), "keychain_id"],
    ["malformed keychain_id", () => kc().listGrants({ keychainId: "kc_" }), "keychain_id"],
  ],
  ResolveSecrets: [
    [
      "missing package_name",
      () => service.keychains(keychainSecret).resolveSecrets(presented({ packageName: "" })),
      "package_name",
    ],
    [
      "malformed package_name",
      () => service.keychains(keychainSecret).resolveSecrets(presented({ packageName: "a b" })),
      "package_name",
    ],
    [
      "missing version",
      () => service.keychains(keychainSecret).resolveSecrets(presented({ version: "" })),
      "version",
    ],
    [
      "missing sha256",
      () => service.keychains(keychainSecret).resolveSecrets(presented({ sha256: "" })),
      "sha256",
    ],
    [
      "a 63-digit sha256",
      () => service.keychains(keychainSecret).resolveSecrets(presented({ sha256: SHA.slice(1) })),
      "sha256",
    ],
  ],
};

describe.each(Object.keys(cases))("%s with bad input", (rpc) => {
  it.each(cases[rpc] ?? [])("refuses %s naming the field", async (_what, call, field) => {
    const error = await rpcError(call());
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage.startsWith(`${field}: `)).toBe(true);
    expect(error.rawMessage).not.toContain(SECRET_VALUE);
  });
});

describe("nothing a refused call carried was stored", () => {
  it("still holds only the secret stored before", async () => {
    const listed = await kc().listSecretNames({ keychainId });
    expect(listed.secrets.map((secret) => secret.name)).toEqual(["KEEP"]);
    const { rows } = await service.sql.query("select version from package_versions where package_name = $1", [
      PACKAGE,
    ]);
    expect(rows.map((row) => row.version)).toEqual(["1.0.0"]);
  });
});

describe("ResolveSecrets credentials", () => {
  it.each([
    ["no Authorization header", null],
    ["a Basic credential", "Basic dXNlcjpwYXNz"],
    ["a random string", "Bearer not-a-latchkey-key"],
    ["the root key", `Bearer ${ROOT_KEY}`],
    ["an oversized header", `Bearer ${long(600)}`],
  ])("is UNAUTHENTICATED with %s", async (_what, header) => {
    const client = service.keychains(null);
    const error = await rpcError(
      client.resolveSecrets(presented({}), { headers: header === null ? {} : { authorization: header } }),
    );
    expect(error.code).toBe(Code.Unauthenticated);
  });

  it("is UNAUTHENTICATED with a valid key that is no keychain's, and with a tampered keychain secret", async () => {
    const { token } = await service.tokens().issue({ teamId, name: "plain key", scopes: ["admin"] });
    expect((await rpcError(service.keychains(token).resolveSecrets(presented({})))).code).toBe(
      Code.Unauthenticated,
    );
    const last = keychainSecret.at(-1) === "A" ? "B" : "A";
    const tampered = keychainSecret.slice(0, -1) + last;
    expect((await rpcError(service.keychains(tampered).resolveSecrets(presented({})))).code).toBe(
      Code.Unauthenticated,
    );
  });
});

describe("a request with an unknown field", () => {
  const unknown = [{ no: 99, wireType: WireType.Varint, data: Uint8Array.of(1) }];
  const withUnknown = <T extends { $unknown?: unknown }>(message: T): T =>
    Object.assign(message, { $unknown: unknown });

  it("is refused over native gRPC, top level and nested", async () => {
    const client = createClient(KeychainService, createGrpcTransport({ baseUrl: service.grpcUrl }));
    const headers = { authorization: `Bearer ${ROOT_KEY}` };
    const calls: Array<[string, () => Promise<unknown>]> = [
      [
        "CreateKeychain",
        () =>
          client.createKeychain(withUnknown(create(CreateKeychainRequestSchema, { teamId, name: "n" })), {
            headers,
          }),
      ],
      [
        "PutSecret",
        () =>
          client.putSecret(
            withUnknown(create(PutSecretRequestSchema, { keychainId, name: "NEW", value: SECRET_VALUE })),
            {
              headers,
            },
          ),
      ],
      [
        "GrantPackage",
        () => client.grantPackage(withUnknown(create(GrantPackageRequestSchema, grant({}))), { headers }),
      ],
      [
        "RegisterPackageVersion (nested RequiredSecret)",
        () =>
          client.registerPackageVersion(
            create(RegisterPackageVersionRequestSchema, {
              teamId,
              packageVersion: {
                name: PACKAGE,
                version: "7.0.0",
                sha256: SHA,
                required: [withUnknown(create(RequiredSecretSchema, { name: "A" }))],
              },
            }),
            { headers },
          ),
      ],
      [
        "ResolveSecrets",
        () =>
          client.resolveSecrets(withUnknown(create(ResolveSecretsRequestSchema, presented({}))), {
            headers: { authorization: `Bearer ${keychainSecret}` },
          }),
      ],
    ];
    for (const [name, call] of calls) {
      const error = await rpcError(call());
      expect({ name, code: error.code }).toEqual({ name, code: Code.InvalidArgument });
      expect(error.rawMessage).toContain("unknown field number(s) 99");
    }
    expect((await kc().listSecretNames({ keychainId })).secrets.map((secret) => secret.name)).toEqual([
      "KEEP",
    ]);
  });

  it("is refused in JSON over Connect", async () => {
    const { status, body } = await postConnect(
      service.connectUrl,
      "latchkey.v1.KeychainService/PutSecret",
      JSON.stringify({ keychainId, name: "X", value: SECRET_VALUE, extra: 1 }),
      "application/json",
      { authorization: `Bearer ${ROOT_KEY}` },
    );
    expect(status).toBe(400);
    expect(body).not.toContain(SECRET_VALUE);
  });
});
