// The sidecar's Envoy ext_authz listener end to end: the sidecar as a child process with
// LATCHKEY_SIDECAR_EXTAUTHZ_LISTEN set, the real token-service on PostgreSQL with a private NATS
// JetStream server, and a gRPC client built from Envoy's protos sending CheckRequests shaped as
// Envoy's ext_authz filter sends them. No Envoy binary can be installed here (see deploy/envoy/);
// what Envoy does with each answer is the ext_authz filter's documented behaviour, summed up by
// `outcomeOf`.
import { connect } from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CheckRequestSchema } from "@latchkey/proto/envoy";
import { Health, HealthCheckResponse_ServingStatus } from "@latchkey/proto/grpc";
import { generateToken } from "@latchkey/token";
import { WebSocket } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsServer, startNats } from "../harness/index.js";
import { startTestService, type TestService } from "../token-service/start.js";
import {
  type CheckOutcome,
  type EnvoyRequest,
  envoyCheckRequest,
  extAuthzClient,
  outcomeOf,
} from "./ext-authz-client.js";
import { type RecordingUpstream, startRecordingUpstream } from "./recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "./sidecar-process.js";

const POLICY = `
preset: reads-public
rules:
  - name: admin
    path: /admin/**
    kind: key
    scopes: [admin]
  - name: feed
    methods: [GET]
    path: /feed
    kind: key
    scopes: [read]
    allowQueryToken: true
  - name: overridable
    methods: [POST, PUT]
    path: /forms/**
    kind: key
    scopes: [write]
    passMethodOverride: true
  - name: websocket
    path: /ws
    kind: key
    scopes: [read]
  - name: limited
    path: /limited
    kind: key
    scopes: [read]
    rateLimit: [{ name: burst, limit: 2, window: 1h }]
`;

let nats: NatsServer;
let service: TestService;
/** The app behind the sidecar's proxy: the route deploy/envoy/envoy.yaml gives live streams. */
let upstream: RecordingUpstream;
let sidecar: SidecarProcess;
/** A sidecar whose token-service is gone: it cannot decide on an unknown key. */
let orphan: SidecarProcess;
let teamId: string;
const keys = {} as Record<"read" | "write" | "admin", { token: string; id: string }>;

async function issue(name: string, scopes: string[], extra: { owner?: string } = {}) {
  const issued = await service.tokens().issue({ teamId, name, scopes, environment: "live", ...extra });
  return { token: issued.token, id: issued.key?.id ?? "" };
}

const check = async (request: EnvoyRequest, target: SidecarProcess = sidecar): Promise<CheckOutcome> =>
  outcomeOf(await extAuthzClient(target.extAuthzPort as number).check(envoyCheckRequest(request)));
const bearer = (token: string): [string, string] => ["authorization", `Bearer ${token}`];

beforeAll(async () => {
  [nats, upstream] = await Promise.all([startNats(), startRecordingUpstream()]);
  service = await startTestService({ natsUrl: nats.url });
  teamId = (await service.teams().createTeam({ name: "ext-authz-e2e" })).team?.id ?? "";
  const common = {
    upstream: upstream.url,
    natsUrl: nats.url,
    policy: POLICY,
    env: { LATCHKEY_SIDECAR_EXTAUTHZ_LISTEN: "127.0.0.1:0" },
  };
  [sidecar, orphan] = await Promise.all([
    spawnSidecar({ ...common, tokenServiceUrl: service.grpcUrl }),
    spawnSidecar({ ...common, tokenServiceUrl: "http://127.0.0.1:9" }),
  ]);
  keys.read = await issue("extauthz-reader", ["read"]);
  keys.write = await issue("extauthz-writer", ["write"]);
  keys.admin = await issue("extauthz-admin", ["admin"]);
});

afterAll(async () => {
  await Promise.all([sidecar?.stop(), orphan?.stop()]);
  await service?.close();
  await upstream?.app.close();
  await nats?.dispose();
});

describe("Check: allowed", () => {
  it("answers OK with the key's identity, set over anything the client sent, and removes the credential", async () => {
    const outcome = await check({ path: "/admin/users?page=2", headers: [bearer(keys.admin.token)] });
    expect(outcome).toMatchObject({ allowed: true, rpcCode: 0, overwrites: true });
    expect(outcome.headers).toEqual({
      "x-latchkey-key-id": keys.admin.id,
      "x-latchkey-team-id": teamId,
      "x-latchkey-scopes": "admin",
      "x-latchkey-key-name": "extauthz-admin",
      "x-latchkey-environment": "live",
    });
    expect(outcome.headersToRemove).toEqual(["authorization"]);
    expect(outcome.queryParametersToRemove).toEqual([]);
    // From the verifier's cache the second time: same answer.
    expect(await check({ path: "/admin/users?page=2", headers: [bearer(keys.admin.token)] })).toEqual(
      outcome,
    );
  });

  it("takes X-API-Key as well, and removes it", async () => {
    const outcome = await check({
      method: "POST",
      path: "/notes",
      headers: [["x-api-key", keys.write.token]],
    });
    expect(outcome.allowed).toBe(true);
    expect(outcome.headers["x-latchkey-key-id"]).toBe(keys.write.id);
    expect(outcome.headersToRemove).toEqual(["x-api-key"]);
  });

  it("lets a public route through without identity, and keeps a non-Bearer Authorization for the app", async () => {
    const outcome = await check({ path: "/docs", headers: [["authorization", "Basic dXNlcjpwdw=="]] });
    expect(outcome).toMatchObject({ allowed: true, headers: {}, headersToRemove: [] });
  });

  it("carries the rate-limit headers for the client's response", async () => {
    const key = await issue("extauthz-limited", ["read"]);
    const first = await check({ path: "/limited", headers: [bearer(key.token)] });
    expect(first.allowed).toBe(true);
    expect(first.responseHeadersToAdd["ratelimit-policy"]).toMatch(/burst/);
    expect(first.responseHeadersToAdd.ratelimit).toMatch(/"burst";r=1;/);
  });
});

describe("Check: denials carry proxy mode's status, headers and JSON body", () => {
  it("401 without a credential", async () => {
    const outcome = await check({ method: "POST", path: "/notes" });
    expect(outcome).toMatchObject({ allowed: false, rpcCode: Code.Unauthenticated, status: 401 });
    expect(outcome.headers["www-authenticate"]).toBe('Bearer realm="latchkey"');
    expect(outcome.headers["content-type"]).toBe("application/json");
    expect(outcome.headers["content-length"]).toBeUndefined();
    expect(outcome.body?.error.code).toBe("unauthenticated");
  });

  it("401 invalid_token for an unknown, a malformed and a revoked key, one answer for all", async () => {
    const key = await issue("extauthz-revoked", ["write"]);
    expect((await check({ method: "POST", path: "/notes", headers: [bearer(key.token)] })).allowed).toBe(
      true,
    );
    // Every live verifier (this sidecar's) has dropped the key before the Checks below.
    const { propagation } = await service.tokens().revoke({ keyId: key.id, waitTimeout: { seconds: 10n } });
    expect(propagation?.complete).toBe(true);
    const answers: CheckOutcome[] = [];
    for (const token of [generateToken({ prefix: "lk", environment: "live" }), "lk_live_nope", key.token]) {
      answers.push(await check({ method: "POST", path: "/notes", headers: [bearer(token)] }));
    }
    for (const outcome of answers) {
      expect(outcome).toMatchObject({ allowed: false, status: 401, rpcCode: Code.Unauthenticated });
      expect(outcome.headers["www-authenticate"]).toBe('Bearer realm="latchkey", error="invalid_token"');
      expect(outcome.body?.error.code).toBe("invalid_token");
    }
    expect(new Set(answers.map((outcome) => outcome.body?.error.message)).size).toBe(1);
  });

  it("403 insufficient_scope naming the route's scopes", async () => {
    const outcome = await check({ path: "/admin/users", headers: [bearer(keys.read.token)] });
    expect(outcome).toMatchObject({ status: 403, rpcCode: Code.PermissionDenied });
    expect(outcome.headers["www-authenticate"]).toBe(
      'Bearer realm="latchkey", error="insufficient_scope", scope="admin"',
    );
    expect(outcome.body?.error.code).toBe("insufficient_scope");
  });

  it("429 with Retry-After and the rate-limit headers once a key's limit is used up", async () => {
    const key = await issue("extauthz-burst", ["read"]);
    for (let i = 0; i < 2; i++)
      expect((await check({ path: "/limited", headers: [bearer(key.token)] })).allowed).toBe(true);
    const outcome = await check({ path: "/limited", headers: [bearer(key.token)] });
    expect(outcome).toMatchObject({ status: 429, rpcCode: Code.ResourceExhausted });
    expect(Number(outcome.headers["retry-after"])).toBeGreaterThan(0);
    expect(outcome.headers["ratelimit-policy"]).toMatch(/burst/);
    expect(outcome.body?.error.code).toBe("rate_limited");
  });

  it("503 with Retry-After when the token-service cannot be asked (fails closed), a public route still passes", async () => {
    const outcome = await check(
      { method: "POST", path: "/notes", headers: [bearer(keys.write.token)] },
      orphan,
    );
    expect(outcome).toMatchObject({ allowed: false, status: 503, rpcCode: Code.Unavailable });
    expect(outcome.headers["retry-after"]).toBe("2");
    expect(outcome.body?.error.code).toBe("unavailable");
    expect((await check({ path: "/docs" }, orphan)).allowed).toBe(true);
  });

  it("puts Envoy's request id in the body and the access log", async () => {
    const outcome = await check({
      method: "DELETE",
      path: "/notes/1",
      headers: [["x-request-id", "envoy-req-42"]],
    });
    expect(outcome.body?.error.requestId).toBe("envoy-req-42");
    const line = await sidecar.waitForAccessLine((entry) => entry.requestId === "envoy-req-42");
    expect(line).toMatchObject({
      via: "ext-authz",
      status: 401,
      decision: "no_credential",
      path: "/notes/1",
    });
  });
});

describe("Check: what Envoy must remove before the app sees the request", () => {
  it("removes forged identity headers in every spelling, but never one it sets", async () => {
    const outcome = await check({
      path: "/admin/x",
      headers: [
        bearer(keys.admin.token),
        ["x-latchkey-key-id", "key_forged"],
        ["x-latchkey-owner", "someone-else"],
        ["x_latchkey_scopes", "admin"],
        ["x.latchkey.team-id", "team_other"],
        ["x-latchkey-role", "owner"],
        ["x-original-url", "/admin/delete"],
        ["x-rewrite-url", "/admin/delete"],
        ["x-forwarded-uri", "/admin/delete"],
        ["x-http-method-override", "DELETE"],
      ],
    });
    expect(outcome.allowed).toBe(true);
    expect(outcome.headers["x-latchkey-key-id"]).toBe(keys.admin.id);
    // Envoy removes after it sets: a name it sets must not be listed, or the identity would go too.
    expect(outcome.headersToRemove).not.toContain("x-latchkey-key-id");
    expect([...outcome.headersToRemove].sort()).toEqual(
      [
        "authorization",
        // The key has no owner: the client's owner header goes.
        "x-latchkey-owner",
        "x_latchkey_scopes",
        "x.latchkey.team-id",
        "x-latchkey-role",
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-uri",
        "x-http-method-override",
      ].sort(),
    );
  });

  it("keeps a method override where the rule allows it, and refuses one naming a method another rule decides", async () => {
    const kept = await check({
      method: "POST",
      path: "/forms/1",
      headers: [bearer(keys.write.token), ["x-http-method-override", "PUT"]],
    });
    expect(kept.allowed).toBe(true);
    expect(kept.headersToRemove).toEqual(["authorization"]);
    const other = await check({
      method: "POST",
      path: "/forms/1",
      headers: [bearer(keys.write.token), ["x-http-method-override", "DELETE"]],
    });
    expect(other).toMatchObject({ allowed: false, status: 400 });
  });

  it("removes a `token` query parameter in whatever spelling it came", async () => {
    const feed = await check({ path: `/feed?a=1&token=${keys.read.token}` });
    expect(feed).toMatchObject({ allowed: true, queryParametersToRemove: ["token"] });
    expect(feed.headers["x-latchkey-key-id"]).toBe(keys.read.id);
    const encoded = await check({ path: `/feed?%74oken=${keys.read.token}&b=2` });
    expect(encoded).toMatchObject({ allowed: true, queryParametersToRemove: ["%74oken"] });
    // A public route does not take it as a credential, but it still never reaches the app.
    const docs = await check({ path: `/docs?token=${keys.read.token}` });
    expect(docs).toMatchObject({ allowed: true, headers: {}, queryParametersToRemove: ["token"] });
  });
});

describe("Check: paths Envoy should have normalized are refused, naming the settings", () => {
  it.each([
    "//admin/users",
    "/./admin/users",
    "/docs/../admin/users",
    "/docs/%2e%2e/admin/users",
    "/admin%2Fusers",
    "/admin%5cusers",
    "/%61dmin/users",
    "/admin;x/users",
  ])("%s", async (path) => {
    for (const method of ["GET", "POST"]) {
      const outcome = await check({ method, path, headers: [bearer(keys.admin.token)] });
      expect(outcome).toMatchObject({ allowed: false, status: 400, rpcCode: Code.InvalidArgument });
      expect(outcome.body?.error.code).toBe("invalid_request");
    }
    const named = await check({ path });
    if (!path.includes(";") && !path.includes("%5c"))
      expect(named.body?.error.message).toMatch(/normalize_path: true, merge_slashes: true/);
  });

  it("says so in the log, once a minute", async () => {
    await sidecar.waitForAccessLine((entry) => entry.path === "//admin/users" && entry.status === 400);
    expect(sidecar.output()).toMatch(
      /"level":40[^\n]*ext_authz: Envoy asked about a path it did not normalize/,
    );
  });
});

describe("Check: bad input", () => {
  it("refuses a CheckRequest without HTTP attributes, or with a method that is none", async () => {
    const client = extAuthzClient(sidecar.extAuthzPort as number);
    const empty = outcomeOf(await client.check(create(CheckRequestSchema, {})));
    expect(empty).toMatchObject({ allowed: false, status: 400 });
    expect(empty.body?.error.message).toMatch(/attributes\.request\.http/);
    for (const method of ["", "G ET", "GET\r\nX-Latchkey-Key-Id: x", "A".repeat(21), "GÉT"]) {
      const outcome = await check({ method, path: "/docs" });
      expect(outcome, JSON.stringify(method)).toMatchObject({ allowed: false, status: 400 });
    }
  });

  it("reads methods as the policy does: lower case is the same method, unknown ones fall to the default", async () => {
    expect((await check({ method: "get", path: "/docs" })).allowed).toBe(true);
    expect((await check({ method: "post", path: "/docs" })).status).toBe(401);
    expect((await check({ method: "PROPFIND", path: "/docs" })).status).toBe(401);
    expect(
      (await check({ method: "PROPFIND", path: "/docs", headers: [bearer(keys.write.token)] })).allowed,
    ).toBe(true);
  });

  it("finds credentials and forged headers whatever the case of their names", async () => {
    const capitalized = await check({
      path: "/admin/x",
      keepCase: true,
      headers: [
        ["Authorization", `Bearer ${keys.admin.token}`],
        ["X-LATCHKEY-SCOPES", "admin"],
      ],
    });
    expect(capitalized.allowed).toBe(true);
    // The forged scopes are overwritten by the key's, the credential removed.
    expect(capitalized.headers["x-latchkey-scopes"]).toBe("admin");
    expect(capitalized.headersToRemove).toEqual(["authorization"]);
    // Two spellings of one name carrying two different keys: refused, never one picked.
    const twoKeys = await check({
      path: "/admin/x",
      keepCase: true,
      headers: [
        ["authorization", `Bearer ${keys.admin.token}`],
        ["AUTHORIZATION", `Bearer ${keys.read.token}`],
      ],
    });
    expect(twoKeys).toMatchObject({ allowed: false, status: 400 });
  });

  it("sees two credentials as two under encode_raw_headers, and refuses a merged pair", async () => {
    const headers: [string, string][] = [bearer(keys.admin.token), bearer(keys.read.token)];
    expect(await check({ path: "/admin/x", headers, rawHeaders: true })).toMatchObject({ status: 400 });
    expect(await check({ path: "/admin/x", headers })).toMatchObject({ status: 401 });
    const raw = await check({ path: "/admin/x", headers: [bearer(keys.admin.token)], rawHeaders: true });
    expect(raw).toMatchObject({ allowed: true, headersToRemove: ["authorization"] });
  });

  it("decides on large headers within Envoy's limits, and refuses a CheckRequest over 1 MiB", async () => {
    const big = await check({
      path: "/admin/x",
      headers: [bearer(keys.admin.token), ["x-padding", "p".repeat(60 * 1024)]],
    });
    expect(big.allowed).toBe(true);
    const huge = check({ path: "/admin/x", headers: [["x-padding", "p".repeat(2 * 1024 * 1024)]] });
    await expect(huge).rejects.toSatisfy(
      (error: unknown) => error instanceof ConnectError && error.code === Code.ResourceExhausted,
    );
    // A credential far beyond any key's length is refused without a lookup.
    const longKey = await check({ path: "/admin/x", headers: [bearer(`lk_live_${"a".repeat(10_000)}`)] });
    expect(longKey).toMatchObject({ status: 401 });
  });

  it("answers bytes that are no CheckRequest with a gRPC error, and goes on serving", async () => {
    const status = await rawGrpcCall(
      sidecar.extAuthzPort as number,
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    );
    expect(status).not.toBe("0");
    const valid = Buffer.from(toBinary(CheckRequestSchema, envoyCheckRequest({ path: "/docs" })));
    expect(await rawGrpcCall(sidecar.extAuthzPort as number, valid)).toBe("0");
    expect((await check({ path: "/docs" })).allowed).toBe(true);
  });
});

describe("gRPC health on the ext_authz port (Envoy's grpc_health_check, a Kubernetes grpc probe)", () => {
  it("answers SERVING for the server and the Authorization service, NOT_FOUND for any other name", async () => {
    const health = createClient(
      Health,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${sidecar.extAuthzPort as number}` }),
    );
    for (const service of ["", "envoy.service.auth.v3.Authorization"]) {
      expect((await health.check({ service })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    }
    for (const service of ["latchkey.v1.TokenService", "x".repeat(10_000)]) {
      const refused = await health.check({ service }).catch((error: unknown) => ConnectError.from(error));
      expect(refused).toBeInstanceOf(ConnectError);
      expect((refused as ConnectError).code).toBe(Code.NotFound);
      expect((refused as ConnectError).rawMessage.length).toBeLessThan(300);
    }
    // Watch is not served; Check still answers afterwards.
    const watched = await (async () => {
      for await (const _ of health.watch({ service: "" })) return "answered";
      return "ended";
    })().catch((error: unknown) => ConnectError.from(error).code);
    expect(watched).toBe(Code.Unimplemented);
    expect((await check({ path: "/docs" })).allowed).toBe(true);
  });
});

describe("Check: revocation", () => {
  it("a revoked key is refused on its next Check within the revocation bound (NATS), cache or not", async () => {
    const key = await issue("extauthz-stream", ["admin"]);
    expect((await check({ path: "/admin/ws", headers: [bearer(key.token)] })).allowed).toBe(true);
    const revoked = performance.now();
    await service.tokens().revoke({ keyId: key.id });
    for (;;) {
      const outcome = await check({ path: "/admin/ws", headers: [bearer(key.token)] });
      if (!outcome.allowed) {
        expect(outcome.status).toBe(401);
        break;
      }
      expect(performance.now() - revoked).toBeLessThan(5_000);
      await sleep(20);
    }
  });
});

describe("live streams, as deploy/envoy/envoy.yaml routes them", () => {
  it("a WebSocket on the proxied route is closed at revocation, and the key's next Check is refused", async () => {
    const key = await issue("extauthz-live", ["admin"]);
    expect((await check({ path: "/ws", headers: [bearer(key.token)] })).allowed).toBe(true);
    // What Envoy forwards on the WebSocket route: the client's handshake, from loopback, with XFF.
    const socket = new WebSocket(`ws://127.0.0.1:${sidecar.port}/ws`, {
      headers: { authorization: `Bearer ${key.token}`, "x-forwarded-for": "203.0.113.7" },
    });
    const opened = new Promise((resolve, reject) => {
      socket.addEventListener("open", resolve);
      socket.addEventListener("error", reject);
    });
    const closed = new Promise<number>((resolve) =>
      socket.addEventListener("close", (event) => resolve(event.code)),
    );
    await opened;
    const revoked = performance.now();
    await service.tokens().revoke({ keyId: key.id });
    expect(await closed).toBe(1008);
    expect((await check({ path: "/ws", headers: [bearer(key.token)] })).status).toBe(401);
    expect(performance.now() - revoked).toBeLessThan(5_000);
  });
});

/** One unary call to Check with `message` as the request bytes; resolves to the grpc-status. */
function rawGrpcCall(port: number, message: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": "/envoy.service.auth.v3.Authorization/Check",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    stream.end(frame);
    let status = "";
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
    });
    stream.on("trailers", (trailers) => {
      status = String(trailers["grpc-status"]);
    });
    stream.resume();
    stream.on("close", () => {
      session.close();
      resolve(status);
    });
    stream.on("error", reject);
  });
}
