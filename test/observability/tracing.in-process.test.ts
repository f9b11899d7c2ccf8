// Traces in one process, read back from the SDK's InMemorySpanExporter: the real token-service (on
// the harness's PostgreSQL) and the real sidecar in front of the demo app. The sampler is
// `parentbased_traceidratio` at 0: no trace starts here on its own, so every span below exists
// because a trusted caller's `traceparent` said "sampled" — which is also what shows that an
// outsider's cannot. Tracing is process-wide, so this file starts it once, before the services.
import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "@latchkey/proto/grpc";
import { startTracing, type Tracing } from "@latchkey/telemetry";
import { hashToken, hashTokenBase64 } from "@latchkey/token";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createSidecarLogger } from "../../services/sidecar/src/access-log.js";
import { parseSidecarConfig } from "../../services/sidecar/src/config.js";
import { type SidecarHandle, startSidecar } from "../../services/sidecar/src/sidecar.js";
import { send } from "../harness/http-client.js";
import { envoyCheckRequest, extAuthzClient } from "../sidecar/ext-authz-client.js";
import { echoed, type RecordingUpstream, startRecordingUpstream } from "../sidecar/recording-upstream.js";
import { ROOT_KEY, startTestService, type TestService } from "../token-service/start.js";

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let service: TestService;
let upstream: RecordingUpstream;
/** Trusts 127.0.0.1 (the default), so it continues the test's traces. */
let trusting: SidecarHandle;
/** Trusts only 10.9.9.9: to it, the test is an outsider. */
let wary: SidecarHandle;
/** Trusts only 10.9.9.9 too, but continues anyone's trace (`LATCHKEY_TRACE_PARENTS=always`). */
let open: SidecarHandle;
/** Trusts 127.0.0.1, but starts every trace itself (`never`). */
let closed: SidecarHandle;
const logLines: string[] = [];
let token = "";
let keyId = "";
let teamId = "";

const hex = (bytes: number) => randomBytes(bytes).toString("hex");
const traceparent = (traceId: string, flags = "01") => `00-${traceId}-${hex(8)}-${flags}`;
const spansOf = (traceId: string) =>
  exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
const parentId = (span: ReadableSpan) => span.parentSpanContext?.spanId;

beforeAll(async () => {
  tracing = await startTracing({
    serviceName: "latchkey-test",
    env: { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" },
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  service = await startTestService();
  upstream = await startRecordingUpstream();
  const sidecarConfig = (trustedProxies?: string, traceParents?: "always" | "never") =>
    parseSidecarConfig({
      listen: "127.0.0.1:0",
      adminListen: "127.0.0.1:0",
      upstream: upstream.url,
      tokenServiceUrl: service.grpcUrl,
      ...(trustedProxies === undefined ? { extAuthzListen: "127.0.0.1:0" } : { trustedProxies }),
      ...(traceParents === undefined ? {} : { traceParents }),
    });
  const logger = createSidecarLogger("info", {
    write: (chunk: string) => logLines.push(...chunk.split("\n")),
  });
  trusting = await startSidecar(sidecarConfig(), { logger });
  wary = await startSidecar(sidecarConfig("10.9.9.9"), { logger: createSidecarLogger("silent") });
  open = await startSidecar(sidecarConfig("10.9.9.9", "always"), { logger: createSidecarLogger("silent") });
  closed = await startSidecar(sidecarConfig(undefined, "never"), { logger: createSidecarLogger("silent") });
  const team = await service.teamWithAdmin("traced");
  teamId = team.teamId;
  const issued = await service.tokens().issue({ teamId, name: "traced-key", scopes: ["read"] });
  token = issued.token;
  keyId = issued.key?.id ?? "";
});

afterAll(async () => {
  await trusting?.close();
  await wary?.close();
  await open?.close();
  await closed?.close();
  await upstream?.app.close();
  await service?.close();
  await tracing?.shutdown();
});

beforeEach(() => exporter.reset());

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

  it("forwards an unsampled caller's traceparent unchanged and records nothing", async () => {
    const incoming = traceparent(hex(16), "00");
    const response = await send(`http://127.0.0.1:${trusting.port}`, "GET", "/orders/4", {
      authorization: `Bearer ${token}`,
      traceparent: incoming,
    });
    expect(response.status).toBe(200);
    expect(echoed(response).headers.traceparent).toBe(incoming);
    expect(exporter.getFinishedSpans()).toEqual([]);
  });

  it("caps a long tracestate it passes on", async () => {
    const traceId = hex(16);
    const tracestate = Array.from({ length: 60 }, (_, i) => `vendor${i}=${"x".repeat(40)}`).join(",");
    const response = await send(`http://127.0.0.1:${trusting.port}`, "GET", "/orders/5", {
      authorization: `Bearer ${token}`,
      traceparent: traceparent(traceId),
      tracestate,
    });
    expect(response.status).toBe(200);
    const sent = echoed(response).headers.tracestate ?? "";
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.length).toBeLessThanOrEqual(512);
    expect(sent.split(",").length).toBeLessThanOrEqual(32);
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

describe("hostile trace headers", () => {
  it.each([
    ["malformed", { traceparent: "00-not-a-trace-01" }],
    ["all zero", { traceparent: `00-${"0".repeat(32)}-${"0".repeat(16)}-01` }],
    ["version ff", { traceparent: `ff-${hex(16)}-${hex(8)}-01` }],
    ["two traceparents", { traceparent: [traceparent(hex(16)), traceparent(hex(16))] }],
    ["huge tracestate", { traceparent: traceparent(hex(16)), tracestate: "a=b,".repeat(2_000) }],
    ["garbage tracestate", { traceparent: traceparent(hex(16)), tracestate: "\u00ff\u00fe==,,=,=" }],
  ])("%s: the request is decided as usual, and no trace is forced", async (label, headers) => {
    const response = await send(
      `http://127.0.0.1:${trusting.port}`,
      "GET",
      `/hostile/${encodeURIComponent(label)}`,
      {
        authorization: `Bearer ${token}`,
        ...headers,
      },
    );
    expect(response.status).toBe(200);
    // Only a single well-formed sampled parent is continued: the huge and garbage tracestates ride
    // on a valid one, so those two are recorded (with their tracestate dropped or cleaned).
    const recorded = exporter.getFinishedSpans().filter((s) => s.name === "proxy");
    if (label.endsWith("tracestate")) {
      expect(recorded).toHaveLength(1);
      expect(String(echoed(response).headers.tracestate ?? "").length).toBeLessThanOrEqual(512);
    } else {
      expect(recorded).toEqual([]);
    }
  });

  it("an outsider's sampled traceparent does not make the sidecar record, and reaches the app as it was", async () => {
    const incoming = traceparent(hex(16));
    const response = await send(`http://127.0.0.1:${wary.port}`, "GET", "/outsider", {
      authorization: `Bearer ${token}`,
      traceparent: incoming,
    });
    expect(response.status).toBe(200);
    expect(exporter.getFinishedSpans()).toEqual([]);
    expect(echoed(response).headers.traceparent).toBe(incoming);
  });
});

describe("LATCHKEY_TRACE_PARENTS", () => {
  it("always: continues an untrusted caller's trace; never: not even a trusted one's", async () => {
    const continued = hex(16);
    const viaOpen = await send(`http://127.0.0.1:${open.port}`, "GET", "/parents/always", {
      authorization: `Bearer ${token}`,
      traceparent: traceparent(continued),
    });
    expect(viaOpen.status).toBe(200);
    expect(spansOf(continued).map((s) => s.name)).toContain("proxy");

    const ignored = hex(16);
    const viaClosed = await send(`http://127.0.0.1:${closed.port}`, "GET", "/parents/never", {
      authorization: `Bearer ${token}`,
      traceparent: traceparent(ignored),
    });
    expect(viaClosed.status).toBe(200);
    expect(spansOf(ignored)).toEqual([]);
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
      exporter.getFinishedSpans().map((s) => ({ name: s.name, attributes: s.attributes, events: s.events })),
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
