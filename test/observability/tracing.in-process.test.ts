// Traces in one process, read back from the SDK's InMemorySpanExporter (traced-stack.ts): the real
// token-service and the real sidecar in front of the demo app. Parent and child spans from the
// sidecar's request down to the SQL statement, every entry point, the outbox's traceparent, what is
// not traced, and that no span holds a secret. Hostile trace headers: trace-headers.security.test.ts.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "@latchkey/proto/grpc";
import { hashToken, hashTokenBase64 } from "@latchkey/token";
import { SpanKind } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SidecarHandle } from "../../services/sidecar/src/sidecar.js";
import { send } from "../harness/http-client.js";
import { envoyCheckRequest, extAuthzClient } from "../sidecar/ext-authz-client.js";
import { echoed } from "../sidecar/recording-upstream.js";
import { ROOT_KEY, type TestService } from "../token-service/start.js";
import { hex, parentId, startTracedStack, type TracedStack, traceparent } from "./traced-stack.js";

let stack: TracedStack;
let trusting: SidecarHandle;
let token = "";
let keyId = "";
let teamId = "";
let service: TestService;
let logLines: string[];
const spansOf = (traceId: string) => stack.spansOf(traceId);

beforeAll(async () => {
  stack = await startTracedStack();
  ({ trusting, token, keyId, teamId, service, logLines } = stack);
});

afterAll(() => stack?.close());

beforeEach(() => stack.exporter.reset());

describe("a traced request through the sidecar", () => {
  it("makes one trace: sidecar server span, Verify client span, token-service Verify span, PostgreSQL query", async () => {
    const traceId = hex(16);
    const incoming = traceparent(traceId);
    const response = await send(`http://127.0.0.1:${trusting.port}`, "GET", "/orders/1", {
      authorization: `Bearer ${token}`,
      traceparent: incoming,
    });
    expect(response.status).toBe(200);
    const spans = spansOf(traceId);
    const server = spans.find((s) => s.name === "proxy");
    const client = spans.find(
      (s) => s.kind === SpanKind.CLIENT && s.name === "latchkey.v1.TokenService/Verify",
    );
    const verify = spans.find(
      (s) => s.kind === SpanKind.SERVER && s.name === "latchkey.v1.TokenService/Verify",
    );
    const query = spans.find((s) => s.attributes["db.system.name"] === "postgresql");
    expect(server, "sidecar span").toBeDefined();
    expect(client, "Verify client span").toBeDefined();
    expect(verify, "token-service Verify span").toBeDefined();
    expect(query, "PostgreSQL span").toBeDefined();
    // Parent → child, each continuing the one before it.
    expect(parentId(server as ReadableSpan)).toBe(incoming.split("-")[2]);
    expect(parentId(client as ReadableSpan)).toBe(server?.spanContext().spanId);
    expect(parentId(verify as ReadableSpan)).toBe(client?.spanContext().spanId);
    expect(parentId(query as ReadableSpan)).toBe(verify?.spanContext().spanId);
    expect(server?.kind).toBe(SpanKind.SERVER);
    expect(server?.attributes).toMatchObject({
      "http.request.method": "GET",
      "http.response.status_code": 200,
      "latchkey.decision": "key",
      "latchkey.key_id": keyId,
      "latchkey.team_id": teamId,
    });
    expect(client?.attributes).toMatchObject({ "latchkey.verify.result": "VALID", "latchkey.key_id": keyId });
    expect(verify?.attributes).toMatchObject({
      "rpc.system": "grpc",
      "latchkey.protocol": "grpc-native",
      "latchkey.verify.result": "VALID",
      "latchkey.key_id": keyId,
    });
    expect(String(query?.attributes["db.query.text"])).toMatch(/^select .* from "api_keys"/i);
    // The app got the sidecar's own span as its parent.
    const sent = echoed(response).headers.traceparent;
    expect(sent).toBe(`00-${traceId}-${server?.spanContext().spanId}-01`);
  });

  it("makes no Verify span on a cache hit, and logs the trace id on the access-log line", async () => {
    const traceId = hex(16);
    const response = await send(`http://127.0.0.1:${trusting.port}`, "GET", "/orders/2", {
      authorization: `Bearer ${token}`,
      traceparent: traceparent(traceId),
    });
    expect(response.status).toBe(200);
    expect(spansOf(traceId).map((s) => s.name)).toEqual(["proxy"]);
    const spanId = spansOf(traceId)[0]?.spanContext().spanId;
    await expect
      .poll(() => logLines.find((line) => line.includes('"path":"/orders/2"')), { timeout: 3_000 })
      .toContain(`"trace_id":"${traceId}","span_id":"${spanId}"`);
  });

  it("logs the caller's ids for a trace it continued unsampled, and none for an unsampled trace of its own", async () => {
    const traceId = hex(16);
    const incoming = traceparent(traceId, "00");
    const callerSpan = incoming.split("-")[2];
    const base = `http://127.0.0.1:${trusting.port}`;
    const headers = { authorization: `Bearer ${token}` };
    expect((await send(base, "GET", "/logged/continued", { ...headers, traceparent: incoming })).status).toBe(
      200,
    );
    expect((await send(base, "GET", "/logged/own", headers)).status).toBe(200);
    const lineFor = (path: string) => logLines.find((line) => line.includes(`"path":"${path}"`));
    await expect.poll(() => lineFor("/logged/own"), { timeout: 3_000 }).toBeDefined();
    expect(lineFor("/logged/continued")).toContain(`"trace_id":"${traceId}","span_id":"${callerSpan}"`);
    expect(lineFor("/logged/own")).not.toContain("trace_id");
  });

  it("records refusals too, with the decision and no key", async () => {
    const traceId = hex(16);
    const response = await send(`http://127.0.0.1:${trusting.port}`, "GET", "/orders/3", {
      traceparent: traceparent(traceId),
    });
    expect(response.status).toBe(401);
    const [span] = spansOf(traceId);
    expect(span?.attributes).toMatchObject({ "http.response.status_code": 401 });
    expect(span?.attributes["latchkey.key_id"]).toBeUndefined();
  });
});

describe("every entry point", () => {
  it("forward-auth (nginx auth_request) and Envoy's ext_authz Check get a server span each, continuing the caller's trace", async () => {
    const forwardTrace = hex(16);
    const asked = await send(`http://127.0.0.1:${trusting.port}`, "GET", "/_latchkey/auth", {
      "x-original-uri": "/orders/6",
      "x-original-method": "GET",
      authorization: `Bearer ${token}`,
      traceparent: traceparent(forwardTrace),
    });
    expect(asked.status).toBe(200);
    expect(spansOf(forwardTrace).find((s) => s.name === "forward-auth")?.attributes).toMatchObject({
      "latchkey.via": "forward-auth",
      "latchkey.key_id": keyId,
    });

    const checkTrace = hex(16);
    const checked = await extAuthzClient(trusting.extAuthzPort ?? 0).check(
      envoyCheckRequest({
        path: "/orders/7",
        headers: [
          ["authorization", `Bearer ${token}`],
          ["traceparent", traceparent(checkTrace)],
        ],
      }),
    );
    expect(checked.status?.code).toBe(0);
    const check = spansOf(checkTrace).find((s) => s.name === "envoy.service.auth.v3.Authorization/Check");
    expect(check?.attributes).toMatchObject({ "latchkey.via": "ext-authz", "latchkey.key_id": keyId });
  });
});

describe("the token-service's Connect listener", () => {
  it("continues the caller's trace for Verify over the Connect protocol too", async () => {
    const traceId = hex(16);
    const incoming = traceparent(traceId);
    const answer = await service.tokens(null).verify({ token }, { headers: { traceparent: incoming } });
    expect(answer.key?.id).toBe(keyId);
    const verify = spansOf(traceId).find((s) => s.name === "latchkey.v1.TokenService/Verify");
    expect(parentId(verify as ReadableSpan)).toBe(incoming.split("-")[2]);
    expect(verify?.attributes).toMatchObject({
      "rpc.system": "connect_rpc",
      "latchkey.protocol": "connect",
      "latchkey.verify.result": "VALID",
      "latchkey.key_id": keyId,
    });
  });
});

describe("the outbox", () => {
  it("stores the traceparent of the Revoke call that wrote the event", async () => {
    const { key } = await service.tokens().issue({ teamId, name: "to-revoke", scopes: ["read"] });
    const traceId = hex(16);
    await service
      .tokens()
      .revoke({ keyId: key?.id ?? "" }, { headers: { traceparent: traceparent(traceId) } });
    const revoke = spansOf(traceId).find((s) => s.name === "latchkey.v1.TokenService/Revoke");
    expect(revoke?.attributes).toMatchObject({ "rpc.system": "connect_rpc" });
    // The statements of the call are its children.
    const statements = spansOf(traceId).filter((s) => parentId(s) === revoke?.spanContext().spanId);
    expect(statements.map((s) => s.name)).toEqual(expect.arrayContaining(["INSERT", "UPDATE"]));
    const { rows } = await service.sql.query(
      "select trace_parent from key_event_outbox where key_id = $1 and trace_parent is not null",
      [key?.id],
    );
    expect(rows[0]?.trace_parent).toBe(`00-${traceId}-${revoke?.spanContext().spanId}-01`);
  });
});

describe("what is not traced", () => {
  it("health checks on either listener, even with a sampled parent", async () => {
    const traceId = hex(16);
    const headers = { traceparent: traceparent(traceId) };
    for (const baseUrl of [service.connectUrl, service.grpcUrl]) {
      const health = createClient(Health, createGrpcTransport({ baseUrl }));
      const answer = await health.check({ service: "" }, { headers });
      expect(answer.status).toBe(1); // SERVING
    }
    expect(spansOf(traceId)).toEqual([]);
  });
});

describe("what spans carry", () => {
  it("never a token, a key hash or the root key", async () => {
    const traceId = hex(16);
    await send(`http://127.0.0.1:${trusting.port}`, "GET", `/secret-check?token=${token}`, {
      authorization: `Bearer ${token}`,
      "x-api-key": token,
      traceparent: traceparent(traceId),
    });
    const everything = JSON.stringify(
      stack.exporter
        .getFinishedSpans()
        .map((s) => ({ name: s.name, attributes: s.attributes, events: s.events })),
    );
    expect(spansOf(traceId).length).toBeGreaterThan(0);
    for (const secret of [
      token,
      ROOT_KEY,
      Buffer.from(hashToken(token)).toString("hex"),
      hashTokenBase64(token),
    ])
      expect(everything).not.toContain(secret);
  });
});
