// The sidecar end to end, every part real and in its own place: the token-service on a fresh
// PostgreSQL database with a private NATS JetStream server, the sidecar as a child process
// configured by environment variables and a YAML policy file, and the demo app as the upstream.
// One of each for the whole file; each test issues the keys it revokes.
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { generateToken } from "@latchkey/token";
import { WebSocket } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventReader, type RawResponse as Response, send, sendRaw } from "../harness/http-client.js";
import { type NatsServer, startNats } from "../harness/index.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { bearer } from "./credentials.js";
import { echoed, type RecordingUpstream, startRecordingUpstream } from "./recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "./sidecar-process.js";

const CRON_SECRET = randomBytes(24).toString("base64url");
// Revocations arrive over NATS at once; this is the bound when they do not.
const MAX_STALE_MS = 1_000;
// How long a revocation may take to reach the sidecar, for new requests and open connections alike.
const REVOCATION_BOUND_MS = 2_000;

const POLICY = `
preset: reads-public
rules:
  - name: public-docs
    path: /public/**
    kind: public
  - name: admin
    path: /admin/**
    kind: key
    scopes: [admin]
  - name: chats
    path: /chats/**
    kind: key
    scopes: ["chats:write"]
  - name: cron
    methods: [POST]
    path: /cron/**
    kind: secret
    secretEnv: E2E_CRON_SECRET
  - name: streams
    paths: [/events, /ws, /feed/**]
    kind: key
    scopes: [read]
    allowQueryToken: true
  - name: private
    path: /private/**
    kind: key
`;

let nats: NatsServer;
let service: TestService;
let upstream: RecordingUpstream;
let sidecar: SidecarProcess;
let teamId: string;
/** Every credential handed to the sidecar in this file; none may ever appear in its output. */
const secrets: string[] = [CRON_SECRET];
const keys = {} as Record<"read" | "write" | "admin" | "chats", { token: string; id: string; name: string }>;

async function issue(name: string, scopes: string[]) {
  const issued = await service.tokens().issue({ teamId, name, scopes });
  secrets.push(issued.token);
  return { token: issued.token, id: issued.key?.id ?? "", name };
}

const get = (path: string, headers: Record<string, string | string[]> = {}) =>
  send(sidecar.url, "GET", path, headers);
const errorCode = (response: Response) => response.json<{ error: { code: string } }>().error.code;

/** Polls `check` every 20 ms until it holds; returns how long that took, or throws after `timeoutMs`. */
async function within(timeoutMs: number, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

beforeAll(async () => {
  [nats, upstream] = await Promise.all([startNats(), startRecordingUpstream()]);
  service = await startTestService({ natsUrl: nats.url });
  teamId = (await service.teams().createTeam({ name: "sidecar-e2e" })).team?.id ?? "";
  sidecar = await spawnSidecar({
    upstream: upstream.url,
    tokenServiceUrl: service.grpcUrl,
    natsUrl: nats.url,
    policy: POLICY,
    env: { LATCHKEY_MAX_STALE_MS: String(MAX_STALE_MS), E2E_CRON_SECRET: CRON_SECRET },
  });
  keys.read = await issue("e2e-reader", ["read"]);
  keys.write = await issue("e2e-writer", ["write"]);
  keys.admin = await issue("e2e-admin", ["admin"]);
  keys.chats = await issue("e2e-chats", ["chats:write"]);
});

afterAll(async () => {
  await sidecar?.stop();
  await service?.close();
  await upstream?.app.close();
  await nats?.dispose();
});

describe("policy kinds", () => {
  it("public: forwards without a credential and without identity headers", async () => {
    const response = await get("/public/readme?x=1");
    expect(response.status).toBe(200);
    const seen = echoed(response);
    expect(seen.path).toBe("/public/readme?x=1");
    expect(Object.keys(seen.headers).filter((name) => name.startsWith("x-latchkey-"))).toEqual([]);
  });

  it("key with scopes: 401 without a key, 401 for an unknown key, 403 for a key lacking the scope, 200 with it", async () => {
    const none = await get("/chats/1");
    expect(none.status).toBe(401);
    expect(none.headers["www-authenticate"]).toBe('Bearer realm="latchkey"');
    expect(errorCode(none)).toBe("unauthenticated");

    const unknown = await get("/chats/1", bearer(generateToken({ prefix: "lk", environment: "live" })));
    expect(unknown.status).toBe(401);
    expect(unknown.headers["www-authenticate"]).toBe('Bearer realm="latchkey", error="invalid_token"');
    expect(errorCode(unknown)).toBe("invalid_token");

    const lacking = await get("/chats/1", bearer(keys.write.token));
    expect(lacking.status).toBe(403);
    expect(lacking.headers["www-authenticate"]).toBe(
      'Bearer realm="latchkey", error="insufficient_scope", scope="chats:write"',
    );
    expect(errorCode(lacking)).toBe("insufficient_scope");

    const granted = await get("/chats/1", bearer(keys.chats.token));
    expect(granted.status).toBe(200);
    const seen = echoed(granted);
    expect(seen.headers["x-latchkey-key-id"]).toBe(keys.chats.id);
    expect(seen.headers["x-latchkey-scopes"]).toBe("chats:write");
    // The credential is removed before forwarding.
    expect(seen.headers.authorization).toBeUndefined();
  });

  it("the admin scope covers reads: admin, and only admin, opens /admin", async () => {
    expect((await get("/admin/users", bearer(keys.admin.token))).status).toBe(200);
    expect((await get("/admin/users", bearer(keys.write.token))).status).toBe(403);
    expect((await get("/admin/users", bearer(keys.read.token))).status).toBe(403);
  });

  it("secret: 200 with the right secret (never forwarded), 401 with a wrong one or none", async () => {
    const right = await send(sidecar.url, "POST", "/cron/daily", bearer(CRON_SECRET), "{}");
    expect(right.status).toBe(200);
    expect(echoed(right).headers.authorization).toBeUndefined();
    expect(echoed(right).bodyBytes).toBe(2);
    const viaApiKey = await send(sidecar.url, "POST", "/cron/daily", { "x-api-key": CRON_SECRET });
    expect(viaApiKey.status).toBe(200);

    const wrong = await send(sidecar.url, "POST", "/cron/daily", bearer(`${CRON_SECRET.slice(0, -1)}x`));
    expect(wrong.status).toBe(401);
    expect(errorCode(wrong)).toBe("invalid_token");
    // A valid API key is not the secret.
    expect((await send(sidecar.url, "POST", "/cron/daily", bearer(keys.admin.token))).status).toBe(401);
    expect((await send(sidecar.url, "POST", "/cron/daily")).status).toBe(401);
  });

  it("preset reads-public: GET, HEAD and OPTIONS are public, other methods need write", async () => {
    expect((await get("/anything")).status).toBe(200);
    expect((await send(sidecar.url, "HEAD", "/anything")).status).toBe(200);
    expect((await send(sidecar.url, "OPTIONS", "/anything")).status).toBe(200);
    const anonymous = await send(sidecar.url, "POST", "/anything", {}, "x");
    expect(anonymous.status).toBe(401);
    expect((await send(sidecar.url, "DELETE", "/anything", bearer(keys.read.token))).status).toBe(403);
    const written = await send(sidecar.url, "PUT", "/anything", bearer(keys.write.token), "x");
    expect(written.status).toBe(200);
    expect(echoed(written)).toMatchObject({ method: "PUT", path: "/anything", bodyBytes: 1 });
    expect(echoed(written).headers["x-latchkey-key-id"]).toBe(keys.write.id);
  });
});

describe("credential sources", () => {
  it("takes the key from Authorization: Bearer (any case) and from X-API-Key", async () => {
    const sources: Record<string, string>[] = [
      { authorization: `Bearer ${keys.read.token}` },
      { authorization: `bearer ${keys.read.token}` },
      { "x-api-key": keys.read.token },
    ];
    for (const headers of sources) {
      const response = await get("/private/x", headers);
      expect(response.status).toBe(200);
      expect(echoed(response).headers["x-latchkey-key-id"]).toBe(keys.read.id);
      expect(echoed(response).headers["x-api-key"]).toBeUndefined();
    }
  });

  it("takes ?token= only on a route that allows it, and the app never sees it", async () => {
    const allowed = await get(`/feed/latest?a=1&token=${keys.read.token}&b=2`);
    expect(allowed.status).toBe(200);
    expect(echoed(allowed).path).toBe("/feed/latest?a=1&b=2");
    expect(echoed(allowed).headers["x-latchkey-key-id"]).toBe(keys.read.id);
    // An encoded parameter name is still the token parameter.
    const encodedName = await get(`/feed/latest?%74oken=${keys.read.token}`);
    expect(encodedName.status).toBe(200);
    expect(echoed(encodedName).path).toBe("/feed/latest");

    const before = upstream.seen.length;
    const refused = await get(`/private/x?token=${keys.read.token}`);
    expect(refused.status).toBe(401);
    expect(errorCode(refused)).toBe("unauthenticated");
    expect(upstream.seen.length).toBe(before);
    expect(upstream.seen.some((target) => target.includes(keys.read.token))).toBe(false);
  });

  it("refuses two different credentials in one request, and accepts the same one twice", async () => {
    const before = upstream.seen.length;
    const conflicts: [string, Record<string, string | string[]>][] = [
      ["/private/x", { authorization: `Bearer ${keys.read.token}`, "x-api-key": keys.write.token }],
      [`/feed/x?token=${keys.write.token}`, bearer(keys.read.token)],
      ["/private/x", { authorization: [`Bearer ${keys.read.token}`, `Bearer ${keys.write.token}`] }],
    ];
    for (const [path, headers] of conflicts) {
      const response = await get(path, headers);
      expect(response.status).toBe(400);
      expect(errorCode(response)).toBe("invalid_request");
    }
    expect(upstream.seen.length).toBe(before);
    const same = await get("/private/x", { ...bearer(keys.read.token), "x-api-key": keys.read.token });
    expect(same.status).toBe(200);
  });

  it("leaves other Authorization schemes to the app on a public route", async () => {
    const response = await get("/public/x", { authorization: "Basic dXNlcjpwYXNz" });
    expect(response.status).toBe(200);
    expect(echoed(response).headers.authorization).toBe("Basic dXNlcjpwYXNz");
    expect((await get("/private/x", { authorization: "Basic dXNlcjpwYXNz" })).status).toBe(401);
  });
});

describe("identity headers", () => {
  const forged = {
    "x-latchkey-key-id": "key_forged",
    "x-latchkey-team-id": "team_forged",
    "x-latchkey-scopes": "admin",
    "x-latchkey-key-name": "forged",
    "x-latchkey-environment": "forged",
    "x-latchkey-owner": "forged",
    "X-Latchkey-Something-Else": "forged",
  };

  it("replaces forged x-latchkey-* headers with the real identity", async () => {
    const response = await get("/private/x", { ...forged, ...bearer(keys.read.token) });
    expect(response.status).toBe(200);
    const latchkey = Object.entries(echoed(response).headers).filter(([name]) =>
      name.startsWith("x-latchkey-"),
    );
    expect(Object.fromEntries(latchkey)).toEqual({
      "x-latchkey-key-id": keys.read.id,
      "x-latchkey-team-id": teamId,
      "x-latchkey-scopes": "read",
      "x-latchkey-key-name": keys.read.name,
      "x-latchkey-environment": "live",
    });
  });

  it("forwards no x-latchkey-* header at all on a public route", async () => {
    const response = await get("/public/x", forged);
    expect(response.status).toBe(200);
    expect(Object.keys(echoed(response).headers).filter((name) => name.startsWith("x-latchkey-"))).toEqual(
      [],
    );
  });

  it("does not let Connection: name the identity headers away", async () => {
    const response = await get("/private/x", {
      ...bearer(keys.read.token),
      connection: "x-latchkey-key-id, x-latchkey-team-id",
    });
    expect(response.status).toBe(200);
    expect(echoed(response).headers["x-latchkey-key-id"]).toBe(keys.read.id);
    expect(echoed(response).headers["x-latchkey-team-id"]).toBe(teamId);
  });

  it("extends X-Forwarded-For from a trusted proxy (loopback by default)", async () => {
    const response = await get("/public/x", { "x-forwarded-for": "203.0.113.7" });
    expect(echoed(response).headers["x-forwarded-for"]).toBe("203.0.113.7, 127.0.0.1");
  });
});

describe("paths that try to reach a private route through a public one", () => {
  // Each, read naively, starts under /public/ (or is not /admin); after normalization each is /admin/…
  // or a shape two HTTP stacks read differently, which is refused outright.
  const attacks = [
    "/public/../admin/users",
    "/public/./../admin/users",
    "/public/x/../../admin/users",
    "/public/%2e%2e/admin/users",
    "/public/%2E%2E/admin/users",
    "/public/.%2e/admin/users",
    "/public/..;/admin/users",
    "/public/..;x=1/admin/users",
    "//admin/users",
    "///admin//users",
    "/./admin/users",
    "/admin;x",
    "/admin;jsessionid=1/users",
    "/ADMIN/users",
    "/Admin/Users",
    "/PUBLIC/../ADMIN/users",
    "/%61dmin/users",
    "/%41DMIN/users",
    "/admin/",
    "/admin",
    "/public%2F..%2Fadmin/users",
    "/public%2f..%2fadmin/users",
    "/public/..%2Fadmin/users",
    "/public/..%5Cadmin/users",
    "/public\\..\\admin/users",
    "/public/%252e%252e/admin/users",
    "/public/%2e%2e%2fadmin/users",
    "/public/%00/../admin/users",
  ];

  it.each(attacks)("%s without a key: refused, nothing reaches the app", async (path) => {
    const before = upstream.seen.length;
    const response = await get(path);
    expect([400, 401]).toContain(response.status);
    expect(upstream.seen.slice(before)).toEqual([]);
  });

  it("with a key lacking admin: 403 (the admin rule matched), nothing reaches the app", async () => {
    const before = upstream.seen.length;
    for (const path of attacks) {
      expect([400, 403]).toContain((await get(path, bearer(keys.read.token))).status);
    }
    expect(upstream.seen.slice(before)).toEqual([]);
  });

  it("with an admin key: the app gets the canonical path that was matched", async () => {
    for (const [path, canonical] of [
      ["/public/../admin/users", "/admin/users"],
      ["/public/%2e%2e/admin/users", "/admin/users"],
      ["//admin//users", "/admin/users"],
      ["/%61dmin/users", "/admin/users"],
    ]) {
      const response = await get(path as string, bearer(keys.admin.token));
      expect(response.status).toBe(200);
      expect(echoed(response).path).toBe(canonical);
    }
  });

  it("a WebSocket handshake through /public/.. is refused too", async () => {
    const before = upstream.seen.length;
    const reply = await sendRaw(
      sidecar.url,
      Buffer.from(
        "GET /public/%2e%2e/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      ),
    );
    expect(reply).toMatch(/^HTTP\/1\.1 401 /);
    expect(upstream.seen.slice(before)).toEqual([]);
  });

  it("a query string that looks like a public path changes nothing", async () => {
    const before = upstream.seen.length;
    for (const path of ["/admin/users?x=/public/", "/admin?/public/x", "/admin/users?/public/../x"]) {
      expect((await get(path)).status).toBe(401);
    }
    expect(upstream.seen.slice(before)).toEqual([]);
    // And the other way round: a public path with a private-looking query stays public, query intact.
    const response = await get("/public/x?next=/admin/users");
    expect(response.status).toBe(200);
    expect(echoed(response).path).toBe("/public/x?next=/admin/users");
    expect(echoed(response).headers["x-latchkey-key-id"]).toBeUndefined();
  });
});

describe("oversized and non-UTF-8 credentials", () => {
  it("refuses them with 401 invalid_token and nothing reaches the app", async () => {
    const before = upstream.seen.length;
    for (const headers of [
      bearer("a".repeat(600)),
      { "x-api-key": `lk_live_${"b".repeat(8_000)}` },
      bearer(`${keys.read.token}\u00e9`),
      { "x-api-key": "lk_live_\u00ff\u00fe\u0080" },
    ]) {
      const response = await get("/private/x", headers);
      expect(response.status).toBe(401);
      expect(errorCode(response)).toBe("invalid_token");
    }
    for (const query of ["token=%FF%FE%FD", "token=%C3%28", "token=%zz", `token=${"c".repeat(3_000)}`]) {
      const response = await get(`/feed/x?${query}`);
      expect(response.status).toBe(401);
    }
    expect(upstream.seen.slice(before)).toEqual([]);
  });

  it("refuses raw invalid UTF-8 bytes in the header with 401, on a raw connection", async () => {
    const head = Buffer.from(
      "GET /private/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer lk_live_",
    );
    const reply = await sendRaw(
      sidecar.url,
      Buffer.concat([head, Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]), Buffer.from("\r\n\r\n")]),
    );
    expect(reply).toMatch(/^HTTP\/1\.1 401 /);
    expect(reply).toContain('error="invalid_token"');
  });

  it("answers a header larger than the parser takes with a 4xx, and keeps serving", async () => {
    const reply = await sendRaw(
      sidecar.url,
      Buffer.from(
        `GET /private/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${"d".repeat(70_000)}\r\n\r\n`,
      ),
    );
    expect(reply).toMatch(/^HTTP\/1\.1 4(00|31) /);
    expect(sidecar.process.child.exitCode).toBeNull();
    expect((await send(sidecar.adminUrl, "GET", "/healthz")).status).toBe(200);
    expect((await get("/private/x", bearer(keys.read.token))).status).toBe(200);
  });
});

describe("streams", () => {
  it("passes SSE through event by event, and ends the stream within the bound after Revoke", async () => {
    const key = await issue("e2e-sse", ["read"]);
    const response = await fetch(`${sidecar.url}/events?interval=30`, { headers: bearer(key.token) });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const events = eventReader(response.body as ReadableStream<Uint8Array>);
    expect(await events.next()).toBe('id: 0\ndata: {"tick":0}');
    expect(await events.next()).toBe('id: 1\ndata: {"tick":1}');

    const revoked = performance.now();
    await service.tokens().revoke({ keyId: key.id });
    let next = await events.next();
    while (next !== undefined) next = await events.next();
    expect(performance.now() - revoked).toBeLessThan(REVOCATION_BOUND_MS);
  });

  it("takes an SSE key from ?token= and the app does not see it", async () => {
    const key = await issue("e2e-sse-query", ["read"]);
    const before = upstream.seen.length;
    const response = await fetch(`${sidecar.url}/events?interval=30&token=${key.token}`);
    expect(response.status).toBe(200);
    const events = eventReader(response.body as ReadableStream<Uint8Array>);
    expect(await events.next()).toContain('"tick":0');
    await events.cancel();
    expect(upstream.seen.slice(before)).toEqual(["/events?interval=30"]);
  });

  it("passes a WebSocket through, echoes, and closes it with 1008 within the bound after Revoke", async () => {
    const key = await issue("e2e-ws", ["read"]);
    const socket = new WebSocket(`ws://127.0.0.1:${sidecar.port}/ws?room=1`, {
      headers: { ...bearer(key.token), "x-latchkey-key-id": "key_forged" },
    });
    const messages: string[] = [];
    let wake: (() => void) | undefined;
    socket.addEventListener("message", (event) => {
      messages.push(String(event.data));
      wake?.();
    });
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason })),
    );
    const nextMessage = async () => {
      while (messages.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return messages.shift() as string;
    };
    const hello = JSON.parse(await nextMessage()) as { path: string; headers: Record<string, string> };
    expect(hello.path).toBe("/ws?room=1");
    expect(hello.headers["x-latchkey-key-id"]).toBe(key.id);
    expect(hello.headers["x-latchkey-team-id"]).toBe(teamId);
    expect(hello.headers.authorization).toBeUndefined();
    socket.send("hello through the sidecar");
    expect(await nextMessage()).toBe("hello through the sidecar");

    const revoked = performance.now();
    await service.tokens().revoke({ keyId: key.id });
    expect(await closed).toEqual({ code: 1008, reason: "key revoked" });
    expect(performance.now() - revoked).toBeLessThan(REVOCATION_BOUND_MS);
  });

  it("ends an SSE stream when its key expires, and refuses the key from then on", async () => {
    const expiresAt = Date.now() + 1_500;
    const issued = await service.tokens().issue({
      teamId,
      name: "e2e-expiring",
      scopes: ["read"],
      expireTime: timestampFromDate(new Date(expiresAt)),
    });
    secrets.push(issued.token);
    const response = await fetch(`${sidecar.url}/events?interval=30`, { headers: bearer(issued.token) });
    expect(response.status).toBe(200);
    const events = eventReader(response.body as ReadableStream<Uint8Array>);
    expect(await events.next()).toContain('"tick":0');
    let next = await events.next();
    while (next !== undefined) next = await events.next();
    // Not before the expiry (a timer may round by a millisecond), and within the bound after it.
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt - 20);
    expect(Date.now() - expiresAt).toBeLessThan(REVOCATION_BOUND_MS);
    expect((await get("/private/x", bearer(issued.token))).status).toBe(401);
  });

  it("takes a WebSocket key from ?token= and the app does not see it", async () => {
    const key = await issue("e2e-ws-query", ["read"]);
    const socket = new WebSocket(`ws://127.0.0.1:${sidecar.port}/ws?token=${key.token}&a=b`);
    const hello = await new Promise<{ path: string; headers: Record<string, string> }>((resolve) =>
      socket.addEventListener("message", (event) => resolve(JSON.parse(String(event.data)))),
    );
    expect(hello.path).toBe("/ws?a=b");
    expect(hello.headers["x-latchkey-key-id"]).toBe(key.id);
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.close();
    await closed;
  });
});

describe("revocation", () => {
  it("reaches the sidecar: a cached key is refused within the bound after Revoke", async () => {
    const key = await issue("e2e-revoked", ["read"]);
    expect((await get("/private/x", bearer(key.token))).status).toBe(200);
    // Cached now: the next answer comes from the sidecar's cache.
    expect((await get("/private/x", bearer(key.token))).status).toBe(200);
    await service.tokens().revoke({ keyId: key.id });
    await within(
      REVOCATION_BOUND_MS,
      async () => (await get("/private/x", bearer(key.token))).status === 401,
    );
    const refused = await get("/private/x", bearer(key.token));
    expect(refused.status).toBe(401);
    expect(errorCode(refused)).toBe("invalid_token");
  });

  it("a disabled key is refused too, and works again once enabled", async () => {
    const key = await issue("e2e-disabled", ["read"]);
    expect((await get("/private/x", bearer(key.token))).status).toBe(200);
    await service.tokens().update({ keyId: key.id, enabled: false });
    await within(
      REVOCATION_BOUND_MS,
      async () => (await get("/private/x", bearer(key.token))).status === 401,
    );
    await service.tokens().update({ keyId: key.id, enabled: true });
    await within(
      REVOCATION_BOUND_MS,
      async () => (await get("/private/x", bearer(key.token))).status === 200,
    );
  });
});

describe("key changes", () => {
  it("a narrowed scope reaches the sidecar: 200, then 403 within the bound", async () => {
    const key = await issue("e2e-narrowed", ["chats:write"]);
    expect((await get("/chats/1", bearer(key.token))).status).toBe(200);
    await service.tokens().update({ keyId: key.id, scopes: { values: ["read"] } });
    await within(REVOCATION_BOUND_MS, async () => (await get("/chats/1", bearer(key.token))).status === 403);
    expect((await get("/private/x", bearer(key.token))).status).toBe(200);
  });
});

describe("forward-auth endpoint", () => {
  // The original method is required; these checks describe GETs unless they say otherwise.
  const auth = (headers: Record<string, string>) =>
    send(
      sidecar.url,
      "GET",
      "/_latchkey/auth",
      "x-original-method" in headers || "x-forwarded-method" in headers
        ? headers
        : { ...headers, "x-original-method": "GET" },
    );

  it("answers 200 with the identity headers for a valid key, and nothing reaches the app", async () => {
    const before = upstream.seen.length;
    const response = await auth({ "x-original-uri": "/admin/users?page=2", ...bearer(keys.admin.token) });
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({
      "x-latchkey-key-id": keys.admin.id,
      "x-latchkey-team-id": teamId,
      "x-latchkey-scopes": "admin",
      "x-latchkey-key-name": keys.admin.name,
    });
    expect(upstream.seen.slice(before)).toEqual([]);
  });

  it("answers 401 without a key, 403 for a key lacking the scope, as the proxy would", async () => {
    const none = await auth({ "x-original-uri": "/admin/users" });
    expect(none.status).toBe(401);
    expect(none.headers["www-authenticate"]).toBe('Bearer realm="latchkey"');
    expect((await auth({ "x-original-uri": "/admin/users", ...bearer(keys.read.token) })).status).toBe(403);
    // The app gets the URI as the client sent it: a dotted or encoded one is refused, not normalized.
    expect((await auth({ "x-original-uri": "/public/%2e%2e/admin/users" })).status).toBe(400);
    expect((await auth({ "x-original-uri": "/public%2F..%2Fadmin" })).status).toBe(400);
  });

  it("decides from X-Forwarded-Uri and X-Forwarded-Method (Traefik)", async () => {
    const traefik = { "x-forwarded-uri": "/anything", "x-forwarded-method": "POST" };
    expect((await auth(traefik)).status).toBe(401);
    expect((await auth({ ...traefik, ...bearer(keys.read.token) })).status).toBe(403);
    const granted = await auth({ ...traefik, "x-api-key": keys.write.token });
    expect(granted.status).toBe(200);
    expect(granted.headers["x-latchkey-key-id"]).toBe(keys.write.id);
  });

  it("takes ?token= from X-Original-URI on a route that allows it", async () => {
    const granted = await auth({ "x-original-uri": `/events?interval=10&token=${keys.read.token}` });
    expect(granted.status).toBe(200);
    expect(granted.headers["x-latchkey-key-id"]).toBe(keys.read.id);
    // Elsewhere the proxy in front would hand the app a key in its URL: refused.
    expect((await auth({ "x-original-uri": `/private/x?token=${keys.read.token}` })).status).toBe(400);
  });

  it("grants a public route without identity headers", async () => {
    const response = await auth({ "x-original-uri": "/public/x" });
    expect(response.status).toBe(200);
    expect(response.headers["x-latchkey-key-id"]).toBeUndefined();
  });

  it("refuses a request carrying identity headers, which the proxy in front would pass on", async () => {
    for (const name of ["x-latchkey-key-id", "x_latchkey_scopes"]) {
      const response = await auth({ "x-original-uri": "/public/x", [name]: "key_forged" });
      expect(response.status).toBe(400);
    }
  });
});

describe("access log", () => {
  it("has a line per request with its request id, key id and team id, and never a credential", async () => {
    const requestId = `e2e-access-${randomBytes(4).toString("hex")}`;
    const response = await get("/chats/42?q=1", { ...bearer(keys.chats.token), "x-request-id": requestId });
    expect(response.status).toBe(200);
    expect(echoed(response).headers["x-request-id"]).toBe(requestId);
    const line = await sidecar.waitForAccessLine((entry) => entry.requestId === requestId);
    expect(line).toMatchObject({
      method: "GET",
      path: "/chats/42",
      status: 200,
      decision: "key",
      keyId: keys.chats.id,
      teamId,
    });
    expect(typeof line.durationMs).toBe("number");

    // A refusal carries its request id in the body and the header, and is logged under it.
    const refused = await get("/chats/42", bearer(keys.read.token));
    const refusedId = refused.json<{ error: { requestId: string } }>().error.requestId;
    expect(refused.headers["x-request-id"]).toBe(refusedId);
    const refusedLine = await sidecar.waitForAccessLine((entry) => entry.requestId === refusedId);
    expect(refusedLine).toMatchObject({ status: 403, decision: "insufficient_scope", keyId: keys.read.id });

    // Everything above this line is on stdout by now; no token or secret in any of it.
    const output = sidecar.output();
    expect(output).toContain(keys.chats.id);
    for (const secret of secrets) expect(output).not.toContain(secret);
  });
});
