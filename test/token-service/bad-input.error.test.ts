// Every RPC with missing, oversized and malformed fields: each is an
// INVALID_ARGUMENT whose message starts with the field to fix. A token that is
// not a Latchkey key is not an error: Verify answers MALFORMED.
import { create, toBinary } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  CreateTeamRequestSchema,
  GetRequestSchema,
  IssueRequestSchema,
  ListRequestSchema,
  ListTeamsRequestSchema,
  RevokeRequestSchema,
  RotateRequestSchema,
  ScopeListSchema,
  TeamService,
  TokenService,
  UpdateRequestSchema,
  VerifyRequestSchema,
  VerifyResult,
} from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lengthDelimited, postConnect, rawGrpc } from "./raw-calls.js";
import { rpcError } from "./rpc-error.js";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

let service: TestService;
let teamId: string;
let keyId: string;
let token: string;
beforeAll(async () => {
  service = await startTestService();
  const { team } = await service.teams().createTeam({ name: "bad-input" });
  teamId = team?.id ?? "";
  const issued = await service.tokens().issue({ teamId, name: "target", scopes: ["read"] });
  keyId = issued.key?.id ?? "";
  token = issued.token;
});
afterAll(() => service?.close());

const tokens = () => service.tokens();
const teams = () => service.teams();
const long = (n: number, c = "a") => c.repeat(n);
const BAD_KEY_ID = "key_123";
const BAD_TEAM_ID = "team_../../etc";
const past = () => timestampFromDate(new Date(Date.now() - 60_000));
const manyMetadata = () => Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"]));
const manyScopes = () => Array.from({ length: 33 }, (_, i) => `scope${i}`);
const seconds = (s: number) => ({ seconds: BigInt(s), nanos: 0 });

// [description, call, the field the message must start with]
type Case = [string, () => Promise<unknown>, string];

const cases: Record<string, Case[]> = {
  Issue: [
    ["missing team_id", () => tokens().issue({ name: "n" }), "team_id"],
    ["malformed team_id", () => tokens().issue({ teamId: BAD_TEAM_ID, name: "n" }), "team_id"],
    ["missing name", () => tokens().issue({ teamId, name: "" }), "name"],
    ["blank name", () => tokens().issue({ teamId, name: "   " }), "name"],
    ["name over 100 characters", () => tokens().issue({ teamId, name: long(101) }), "name"],
    ["name with a control character", () => tokens().issue({ teamId, name: "bell\u0007" + "x" }), "name"],
    ["name with a line separator", () => tokens().issue({ teamId, name: "a\u2028b" }), "name"],
    ["33 scopes", () => tokens().issue({ teamId, name: "n", scopes: manyScopes() }), "scopes"],
    ["an upper-case scope", () => tokens().issue({ teamId, name: "n", scopes: ["Chats:write"] }), "scopes"],
    ["a scope with a space", () => tokens().issue({ teamId, name: "n", scopes: ["chats write"] }), "scopes"],
    ["a 65-character scope", () => tokens().issue({ teamId, name: "n", scopes: [long(65)] }), "scopes"],
    ["an empty scope", () => tokens().issue({ teamId, name: "n", scopes: [""] }), "scopes"],
    ["environment Prod", () => tokens().issue({ teamId, name: "n", environment: "Prod" }), "environment"],
    ["owner with a slash", () => tokens().issue({ teamId, name: "n", owner: "a/b" }), "owner"],
    [
      "expire_time in the past",
      () => tokens().issue({ teamId, name: "n", expireTime: past() }),
      "expire_time",
    ],
    [
      "33 metadata entries",
      () => tokens().issue({ teamId, name: "n", metadata: manyMetadata() }),
      "metadata",
    ],
    [
      "a metadata key with a space",
      () => tokens().issue({ teamId, name: "n", metadata: { "a b": "v" } }),
      "metadata",
    ],
    [
      "a 65-character metadata key",
      () => tokens().issue({ teamId, name: "n", metadata: { [long(65)]: "v" } }),
      "metadata",
    ],
    [
      "a metadata value over 512 characters",
      () => tokens().issue({ teamId, name: "n", metadata: { k: long(513) } }),
      "metadata.k",
    ],
    [
      "a metadata value with a newline",
      () => tokens().issue({ teamId, name: "n", metadata: { k: "a\nb" } }),
      "metadata.k",
    ],
  ],
  Verify: [
    ["missing token", () => tokens().verify({ token: "" }), "token"],
    ["a token over 512 bytes", () => tokens().verify({ token: long(513) }), "token"],
    [
      "a token of 300 two-byte characters (600 bytes)",
      () => tokens().verify({ token: long(300, "é") }),
      "token",
    ],
    ["33 required scopes", () => tokens().verify({ token, requiredScopes: manyScopes() }), "required_scopes"],
    [
      "a malformed required scope",
      () => tokens().verify({ token, requiredScopes: ["READ"] }),
      "required_scopes",
    ],
  ],
  Revoke: [
    ["missing key_id", () => tokens().revoke({}), "key_id"],
    ["malformed key_id", () => tokens().revoke({ keyId: BAD_KEY_ID }), "key_id"],
    ["key_id with a valid shape plus a suffix", () => tokens().revoke({ keyId: `${keyId}x` }), "key_id"],
    ["a reason over 500 characters", () => tokens().revoke({ keyId, reason: long(501) }), "reason"],
    ["a reason with a control character", () => tokens().revoke({ keyId, reason: "a\u0000b" }), "reason"],
    ["a negative wait_timeout", () => tokens().revoke({ keyId, waitTimeout: seconds(-1) }), "wait_timeout"],
    ["a wait_timeout over 30 s", () => tokens().revoke({ keyId, waitTimeout: seconds(31) }), "wait_timeout"],
  ],
  Rotate: [
    ["missing key_id", () => tokens().rotate({}), "key_id"],
    ["malformed key_id", () => tokens().rotate({ keyId: BAD_KEY_ID }), "key_id"],
    ["a negative grace_period", () => tokens().rotate({ keyId, gracePeriod: seconds(-5) }), "grace_period"],
    [
      "a grace_period over 30 days",
      () => tokens().rotate({ keyId, gracePeriod: seconds(31 * 86_400) }),
      "grace_period",
    ],
  ],
  Get: [
    ["missing key_id", () => tokens().get({}), "key_id"],
    ["malformed key_id", () => tokens().get({ keyId: `key_${long(23)}` }), "key_id"],
  ],
  List: [
    ["missing team_id (root key)", () => tokens().list({}), "team_id"],
    ["malformed team_id", () => tokens().list({ teamId: BAD_TEAM_ID }), "team_id"],
    ["page_size 1000", () => tokens().list({ teamId, pageSize: 1000 }), "page_size"],
    ["a negative page_size", () => tokens().list({ teamId, pageSize: -1 }), "page_size"],
    ["a garbage page_token", () => tokens().list({ teamId, pageToken: "garbage!!" }), "page_token"],
    [
      "a base64 page_token of the wrong shape",
      () => tokens().list({ teamId, pageToken: Buffer.from('{"a":1}').toString("base64url") }),
      "page_token",
    ],
    ["an oversized page_token", () => tokens().list({ teamId, pageToken: long(201) }), "page_token"],
  ],
  Update: [
    ["missing key_id", () => tokens().update({ name: "x" }), "key_id"],
    ["malformed key_id", () => tokens().update({ keyId: BAD_KEY_ID, name: "x" }), "key_id"],
    ["no field to change", () => tokens().update({ keyId }), "UpdateRequest"],
    ["a name over 100 characters", () => tokens().update({ keyId, name: long(101) }), "name"],
    ["a blank name", () => tokens().update({ keyId, name: " " }), "name"],
    [
      "a malformed scope",
      () => tokens().update({ keyId, scopes: { values: ["no spaces"] } }),
      "scopes.values",
    ],
    ["33 scopes", () => tokens().update({ keyId, scopes: { values: manyScopes() } }), "scopes.values"],
    [
      "33 metadata entries",
      () => tokens().update({ keyId, metadata: { entries: manyMetadata() } }),
      "metadata.entries",
    ],
    [
      "a metadata value with a tab",
      () => tokens().update({ keyId, metadata: { entries: { k: "a\tb" } } }),
      "metadata.entries.k",
    ],
  ],
  CreateTeam: [
    ["missing name", () => teams().createTeam({}), "name"],
    ["a name over 100 characters", () => teams().createTeam({ name: long(101) }), "name"],
    ["a name with an escape character", () => teams().createTeam({ name: "\u001b[31mred" }), "name"],
  ],
  ListTeams: [
    ["page_size 1000", () => teams().listTeams({ pageSize: 1000 }), "page_size"],
    ["a garbage page_token", () => teams().listTeams({ pageToken: "%%%" }), "page_token"],
  ],
};

describe.each(Object.keys(cases))("%s with bad input", (rpc) => {
  it.each(cases[rpc] ?? [])("refuses %s naming the field", async (_what, call, field) => {
    const error = await rpcError(call());
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage.startsWith(`${field}: `) || error.rawMessage.startsWith(`${field} `)).toBe(true);
  });
});

describe("a request with an unknown field", () => {
  // Field 99, varint 1: what a newer client would send to this server.
  const unknown = [{ no: 99, wireType: WireType.Varint, data: Uint8Array.of(1) }];
  // create() does not copy $unknown from the init object, so it is set afterwards.
  const withUnknown = <T extends { $unknown?: unknown }>(message: T): T =>
    Object.assign(message, { $unknown: unknown });
  const requests = () =>
    [
      ["Issue", withUnknown(create(IssueRequestSchema, { teamId, name: "n" }))],
      ["Verify", withUnknown(create(VerifyRequestSchema, { token }))],
      ["Revoke", withUnknown(create(RevokeRequestSchema, { keyId }))],
      ["Rotate", withUnknown(create(RotateRequestSchema, { keyId }))],
      ["Get", withUnknown(create(GetRequestSchema, { keyId }))],
      ["List", withUnknown(create(ListRequestSchema, { teamId }))],
      ["Update", withUnknown(create(UpdateRequestSchema, { keyId, name: "n" }))],
      [
        "Update (nested ScopeList)",
        create(UpdateRequestSchema, {
          keyId,
          scopes: withUnknown(create(ScopeListSchema, { values: ["read"] })),
        }),
      ],
      ["CreateTeam", withUnknown(create(CreateTeamRequestSchema, { name: "unknown-field" }))],
      ["ListTeams", withUnknown(create(ListTeamsRequestSchema))],
    ] as const;

  it.each(["connect+proto", "grpc-native"])("is refused over %s for every RPC", async (protocol) => {
    const transport =
      protocol === "grpc-native"
        ? createGrpcTransport({ baseUrl: service.grpcUrl })
        : createConnectTransport({ baseUrl: service.connectUrl, httpVersion: "2", useBinaryFormat: true });
    const headers = { authorization: `Bearer ${ROOT_KEY}` };
    const tokenClient = createClient(TokenService, transport);
    const teamClient = createClient(TeamService, transport);
    for (const [name, request] of requests()) {
      const call = (() => {
        switch (request.$typeName) {
          case "latchkey.v1.IssueRequest":
            return tokenClient.issue(request, { headers });
          case "latchkey.v1.VerifyRequest":
            return tokenClient.verify(request, { headers });
          case "latchkey.v1.RevokeRequest":
            return tokenClient.revoke(request, { headers });
          case "latchkey.v1.RotateRequest":
            return tokenClient.rotate(request, { headers });
          case "latchkey.v1.GetRequest":
            return tokenClient.get(request, { headers });
          case "latchkey.v1.ListRequest":
            return tokenClient.list(request, { headers });
          case "latchkey.v1.UpdateRequest":
            return tokenClient.update(request, { headers });
          case "latchkey.v1.CreateTeamRequest":
            return teamClient.createTeam(request, { headers });
          case "latchkey.v1.ListTeamsRequest":
            return teamClient.listTeams(request, { headers });
        }
      })();
      const error = await rpcError(call);
      expect({ name, code: error.code }).toEqual({ name, code: Code.InvalidArgument });
      expect(error.rawMessage).toContain("unknown field number(s) 99");
    }
    // Nothing was changed by the refused calls.
    const { key } = await tokenClient.get({ keyId }, { headers });
    expect(key?.revokeTime).toBeUndefined();
    expect(key?.name).toBe("target");
  });

  it("is refused in raw gRPC bytes on the grpc listener", async () => {
    const bytes = toBinary(VerifyRequestSchema, withUnknown(create(VerifyRequestSchema, { token })));
    const { error } = await rawGrpc(
      `127.0.0.1:${service.handle.grpcPort}`,
      "latchkey.v1.TokenService/Verify",
      bytes,
    );
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.details).toContain("VerifyRequest");
  });

  it("is refused in JSON over Connect", async () => {
    const { status, body } = await postConnect(
      service.connectUrl,
      "latchkey.v1.TokenService/Verify",
      JSON.stringify({ token, unknownField: 1 }),
      "application/json",
    );
    expect(status).toBe(400);
    expect(JSON.parse(body)).toMatchObject({ code: "invalid_argument" });
    expect(body).toContain("unknownField");
  });
});

describe("Verify with a token that is not a Latchkey key", () => {
  const checksumFlipped = () => {
    const last = token.at(-1) === "A" ? "B" : "A";
    return token.slice(0, -1) + last;
  };
  it.each([
    ["a wrong checksum", checksumFlipped],
    ["a random string", () => "hello world"],
    ["another prefix", () => token.replace(/^lk_/, "og_")],
    ["a bad environment", () => token.replace("_live_", "_prod_")],
    ["a truncated token", () => token.slice(0, -1)],
    ["non-ASCII characters", () => `lk_live_${"ü".repeat(49)}`],
    ["a NUL byte", () => `${token}\u0000`],
  ])("answers MALFORMED for %s", async (_what, make) => {
    const response = await tokens().verify({ token: make() });
    expect(response.result).toBe(VerifyResult.MALFORMED);
    expect(response.key).toBeUndefined();
  });

  it("answers NOT_FOUND for a well-formed token that was never issued", async () => {
    const { generateToken } = await import("@latchkey/token");
    const response = await tokens().verify({ token: generateToken({ prefix: "lk", environment: "live" }) });
    expect(response.result).toBe(VerifyResult.NOT_FOUND);
  });

  it("refuses invalid UTF-8 in the token field on both listeners, before any handler runs", async () => {
    // Not a valid protobuf string, so the message cannot be decoded at all.
    // connect-es and grpc-js both answer a request they cannot decode with
    // INTERNAL, and neither lets a handler choose otherwise (see the report).
    const body = lengthDelimited(1, Uint8Array.of(0x6c, 0x6b, 0xff, 0xfe, 0x80));
    const connect = await postConnect(
      service.connectUrl,
      "latchkey.v1.TokenService/Verify",
      body,
      "application/proto",
    );
    expect(connect.status).not.toBe(200);
    const error = JSON.parse(connect.body) as { code: string; message: string };
    expect(["invalid_argument", "internal"]).toContain(error.code);
    expect(error.message).not.toMatch(/\bat .*\.(ts|js):\d+/);
    const grpc = await rawGrpc(
      `127.0.0.1:${service.handle.grpcPort}`,
      "latchkey.v1.TokenService/Verify",
      body,
    );
    expect([Code.InvalidArgument, Code.Internal]).toContain(grpc.error?.code);
    expect(grpc.error?.details ?? "").not.toMatch(/\bat .*\.(ts|js):\d+/);
  });
});

describe("an oversized request message", () => {
  it.each(["connect", "grpc-native"])("is refused over %s before any handler runs", async (protocol) => {
    const transport =
      protocol === "grpc-native"
        ? createGrpcTransport({ baseUrl: service.grpcUrl })
        : createConnectTransport({ baseUrl: service.connectUrl, httpVersion: "2", useBinaryFormat: true });
    const error = await rpcError(createClient(TokenService, transport).verify({ token: long(100_000) }));
    expect(error.code).toBe(Code.ResourceExhausted);
  });
});
