// "Traces show up in a local collector during a test": the real token-service and the real sidecar,
// each its own process configured only by the standard OTEL_* variables, export over OTLP/HTTP
// (protobuf) to a collector this test runs (otlp-collector.ts); PostgreSQL and NATS are real too.
// One request through the sidecar must make one trace across both processes, down to the SQL
// query; the app must get the sidecar's traceparent; the log lines must carry the trace id; a
// Revoke's trace must be linked from the NATS publish it caused; nothing exported may hold a secret.
import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { KEY_EVENTS_STREAM } from "@latchkey/events";
import { TeamService, TokenService } from "@latchkey/proto";
import { hashToken, hashTokenBase64 } from "@latchkey/token";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServiceProcess, spawnService } from "../bench/service-process.js";
import { send } from "../harness/http-client.js";
import { findFreePort, freshDatabaseUrl, type NatsServer, startNats } from "../harness/index.js";
import { echoed, type RecordingUpstream, startRecordingUpstream } from "../sidecar/recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import { ROOT_KEY } from "../token-service/start.js";
import { type CollectedSpan, type OtlpCollector, startOtlpCollector } from "./otlp-collector.js";

let collector: OtlpCollector;
let nats: NatsServer;
let nc: NatsConnection;
let tokenService: ServiceProcess;
let upstream: RecordingUpstream;
let sidecar: SidecarProcess;
let connectUrl = "";
const secrets: string[] = [ROOT_KEY];

const hex = (bytes: number) => randomBytes(bytes).toString("hex");
const inTrace = (traceId: string) => (span: CollectedSpan) => span.traceId === traceId;

function otelEnv(): Record<string, string> {
  return {
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
    OTEL_BSP_SCHEDULE_DELAY: "100",
  };
}

function admin() {
  const transport = createConnectTransport({
    baseUrl: connectUrl,
    httpVersion: "2",
    interceptors: [
      (next) => async (request) => {
        request.header.set("authorization", `Bearer ${ROOT_KEY}`);
        return next(request);
      },
    ],
  });
  return { tokens: createClient(TokenService, transport), teams: createClient(TeamService, transport) };
}

beforeAll(async () => {
  collector = await startOtlpCollector();
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  const [port, grpcPort] = [await findFreePort(), await findFreePort()];
  tokenService = await spawnService(
    "services/token-service/src/main.ts",
    {
      DATABASE_URL: await freshDatabaseUrl("otel"),
      NATS_URL: nats.url,
      LATCHKEY_ROOT_KEY: ROOT_KEY,
      LATCHKEY_LISTEN: `127.0.0.1:${port}`,
      LATCHKEY_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
      LATCHKEY_METRICS_LISTEN: "127.0.0.1:0",
      // Debug: each RPC writes an "rpc" line, which must carry the trace id.
      LATCHKEY_LOG_LEVEL: "debug",
      LATCHKEY_SHUTDOWN_TIMEOUT_MS: "1000",
      ...otelEnv(),
    },
    /token-service ready/,
  );
  connectUrl = `http://127.0.0.1:${port}`;
  upstream = await startRecordingUpstream();
  sidecar = await spawnSidecar({
    upstream: upstream.url,
    tokenServiceUrl: `http://127.0.0.1:${grpcPort}`,
    natsUrl: nats.url,
    env: otelEnv(),
  });
}, 60_000);

afterAll(async () => {
  await sidecar?.stop();
  await tokenService?.stop();
  await upstream?.app.close();
  await nc?.close();
  await nats?.stop();
  await collector?.close();
});

describe("traces exported over OTLP by the real processes", () => {
  let token = "";
  let keyId = "";

  beforeAll(async () => {
    const { team } = await admin().teams.createTeam({ name: "otel-e2e" });
    const issued = await admin().tokens.issue({ teamId: team?.id ?? "", name: "otel-key", scopes: ["read"] });
    token = issued.token;
    keyId = issued.key?.id ?? "";
    secrets.push(token, Buffer.from(hashToken(token)).toString("hex"), hashTokenBase64(token));
  });

  it("one trace id spans sidecar → Verify → PostgreSQL; the app and the logs see it", async () => {
    const traceId = hex(16);
    const callerSpan = hex(8);
    const response = await send(sidecar.url, "GET", "/orders/1", {
      authorization: `Bearer ${token}`,
      traceparent: `00-${traceId}-${callerSpan}-01`,
    });
    expect(response.status).toBe(200);
    await collector.waitFor((spans) => {
      const trace = spans.filter(inTrace(traceId));
      return (
        trace.some((s) => s.service === "latchkey-sidecar" && s.name === "proxy") &&
        trace.some((s) => s.attributes["db.system.name"] === "postgresql")
      );
    });
    const trace = collector.spans.filter(inTrace(traceId));
    const byName = (service: string, name: string, kind: number) =>
      trace.find((s) => s.service === service && s.name === name && s.kind === kind);
    const proxy = byName("latchkey-sidecar", "proxy", 2);
    const client = byName("latchkey-sidecar", "latchkey.v1.TokenService/Verify", 3);
    const verify = byName("latchkey-token-service", "latchkey.v1.TokenService/Verify", 2);
    const query = trace.find((s) => s.service === "latchkey-token-service" && s.kind === 3);
    expect(proxy?.parentSpanId).toBe(callerSpan);
    expect(client?.parentSpanId).toBe(proxy?.spanId);
    expect(verify?.parentSpanId).toBe(client?.spanId);
    expect(query?.parentSpanId).toBe(verify?.spanId);
    expect(proxy?.attributes).toMatchObject({ "latchkey.key_id": keyId, "http.response.status_code": 200 });
    expect(verify?.attributes).toMatchObject({ "latchkey.verify.result": "VALID", "latchkey.key_id": keyId });
    expect(query?.attributes["db.query.text"]).toMatch(/from "api_keys"/);

    // The app got the sidecar's span as its parent.
    expect(echoed(response).headers.traceparent).toBe(`00-${traceId}-${proxy?.spanId}-01`);
    // The sidecar's access-log line and the token-service's rpc line carry the trace id.
    const line = await sidecar.waitForAccessLine((l) => l.path === "/orders/1");
    expect(line).toMatchObject({ trace_id: traceId, span_id: proxy?.spanId });
    const rpcLine = tokenService
      .output()
      .split("\n")
      .find((l) => l.includes('"msg":"rpc"') && l.includes("TokenService/Verify") && l.includes(traceId));
    expect(rpcLine, tokenService.output().slice(-2_000)).toContain(`"span_id":"${verify?.spanId}"`);
  });

  it("links the NATS publish of a revocation to the Revoke call, and sends its traceparent in the message headers", async () => {
    const traceId = hex(16);
    await admin().tokens.revoke({ keyId }, { headers: { traceparent: `00-${traceId}-${hex(8)}-01` } });
    await collector.waitFor((spans) =>
      spans.some((s) => s.name === `send ${KEY_EVENTS_STREAM}` && s.links.some((l) => l.traceId === traceId)),
    );
    const revoke = collector.spans.find(
      (s) => s.traceId === traceId && s.name === "latchkey.v1.TokenService/Revoke",
    );
    const publish = collector.spans.find(
      (s) => s.name === `send ${KEY_EVENTS_STREAM}` && s.links.some((l) => l.traceId === traceId),
    );
    expect(revoke?.attributes["rpc.system"]).toBe("connect_rpc");
    expect(publish?.kind).toBe(4);
    expect(publish?.links[0]?.spanId).toBe(revoke?.spanId);
    expect(publish?.attributes).toMatchObject({ "latchkey.key_id": keyId, "latchkey.event_type": "revoked" });
    const sequence = Number(publish?.attributes["latchkey.stream_sequence"]);
    const message = await (await jetstreamManager(nc)).streams.getMessage(KEY_EVENTS_STREAM, {
      seq: sequence,
    });
    expect(message?.header.get("traceparent")).toBe(`00-${publish?.traceId}-${publish?.spanId}-01`);
  });

  it("exports no token, key hash or root key, in any form the collector received", async () => {
    expect(collector.bodies.length).toBeGreaterThan(0);
    const all = Buffer.concat(collector.bodies);
    for (const secret of secrets) expect(all.includes(Buffer.from(secret)), secret.slice(0, 6)).toBe(false);
    // Binary too: the 32 bytes of the token's hash.
    expect(all.includes(hashToken(token))).toBe(false);
  });
});
