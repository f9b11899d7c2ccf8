// The sidecar's other settings end to end, with the same real parts as sidecar.e2e.test.ts: the
// all-private preset with an untrusted-proxy list, log mode, and failing closed once the
// token-service is gone, for cached keys too once maxStale has passed (last, since it stops the
// token-service for the rest of the file).
import { setTimeout as sleep } from "node:timers/promises";
import { generateToken } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventReader, type RawResponse as Response, send } from "../harness/http-client.js";
import { type NatsServer, startNats } from "../harness/index.js";
import { waitUntil } from "../harness/wait.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { bearer } from "./credentials.js";
import { echoed, type RecordingUpstream, startRecordingUpstream } from "./recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "./sidecar-process.js";

const MAX_STALE_MS = 1_000;
const ALL_PRIVATE = `
preset: all-private
rules:
  - name: health
    path: /healthz
    kind: public
`;

let nats: NatsServer;
let service: TestService;
let serviceClosed = false;
let upstream: RecordingUpstream;
/** all-private, and no peer (loopback included) is a trusted proxy. */
let enforcing: SidecarProcess;
/** No policy file (the all-private default), LATCHKEY_ENFORCEMENT=log. */
let logging: SidecarProcess;
let teamId: string;
let reader: { token: string; id: string };

const latchkeyHeaders = (response: Response) =>
  Object.keys(echoed(response).headers).filter((name) => name.startsWith("x-latchkey-"));

async function issue(name: string, scopes: string[]) {
  const issued = await service.tokens().issue({ teamId, name, scopes });
  return { token: issued.token, id: issued.key?.id ?? "" };
}

/** The value of `latchkey_sidecar_decisions_total{decision,mode}` on a sidecar's /metrics. */
async function decisions(sidecar: SidecarProcess, decision: string, mode: string): Promise<number> {
  const text = (await send(sidecar.adminUrl, "GET", "/metrics")).body;
  const line = text
    .split("\n")
    .find((entry) =>
      entry.startsWith(`latchkey_sidecar_decisions_total{decision="${decision}",mode="${mode}"}`),
    );
  return Number(line?.split(" ").at(-1) ?? Number.NaN);
}

beforeAll(async () => {
  [nats, upstream] = await Promise.all([startNats(), startRecordingUpstream()]);
  service = await startTestService({ natsUrl: nats.url });
  teamId = (await service.teams().createTeam({ name: "sidecar-modes-e2e" })).team?.id ?? "";
  const common = { upstream: upstream.url, tokenServiceUrl: service.grpcUrl, natsUrl: nats.url };
  [enforcing, logging] = await Promise.all([
    spawnSidecar({
      ...common,
      policy: ALL_PRIVATE,
      env: { LATCHKEY_TRUSTED_PROXIES: "192.0.2.1", LATCHKEY_MAX_STALE_MS: String(MAX_STALE_MS) },
    }),
    spawnSidecar({ ...common, env: { LATCHKEY_ENFORCEMENT: "log" } }),
  ]);
  reader = await issue("modes-reader", ["read"]);
});

afterAll(async () => {
  await Promise.all([enforcing?.stop(), logging?.stop()]);
  if (!serviceClosed) await service?.close();
  await upstream?.app.close();
  await nats?.dispose();
});

describe("preset all-private", () => {
  it("needs a key with read on every route and method", async () => {
    expect((await send(enforcing.url, "GET", "/")).status).toBe(401);
    expect((await send(enforcing.url, "OPTIONS", "/anything")).status).toBe(401);
    expect((await send(enforcing.url, "GET", "/anything", bearer(reader.token))).status).toBe(200);
    const posted = await send(enforcing.url, "POST", "/anything", bearer(reader.token), "x");
    expect(posted.status).toBe(200);
    expect(echoed(posted).headers["x-latchkey-key-id"]).toBe(reader.id);
  });

  it("lets a rule of the file override the preset", async () => {
    const response = await send(enforcing.url, "GET", "/healthz");
    expect(response.status).toBe(200);
    expect(latchkeyHeaders(response)).toEqual([]);
    expect((await send(enforcing.url, "GET", "/healthz/deeper")).status).toBe(401);
  });
});

describe("trusted proxies", () => {
  it("refuses forward-auth from a peer that is not a trusted proxy, even with a valid key", async () => {
    const before = upstream.seen.length;
    const response = await send(enforcing.url, "GET", "/_latchkey/auth", {
      "x-original-uri": "/anything",
      "x-original-method": "GET",
      ...bearer(reader.token),
    });
    expect(response.status).toBe(403);
    expect(response.json<{ error: { code: string } }>().error.code).toBe("forbidden");
    expect(response.headers["x-latchkey-key-id"]).toBeUndefined();
    expect(upstream.seen.slice(before)).toEqual([]);
  });

  it("replaces the X-Forwarded-* headers of an untrusted peer", async () => {
    const response = await send(enforcing.url, "GET", "/anything", {
      ...bearer(reader.token),
      "x-forwarded-for": "203.0.113.7",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "evil.example",
      host: "app.example",
    });
    expect(response.status).toBe(200);
    expect(echoed(response).headers).toMatchObject({
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "app.example",
    });
  });
});

describe("log mode", () => {
  it("forwards a request without a key, without identity, and logs and counts the decision", async () => {
    const counted = await decisions(logging, "no_credential", "log");
    const before = upstream.seen.length;
    const response = await send(logging.url, "GET", "/reports/q3", {
      "x-request-id": "log-mode-no-key",
      "x-latchkey-key-id": "key_forged",
    });
    expect(response.status).toBe(200);
    expect(latchkeyHeaders(response)).toEqual([]);
    expect(upstream.seen.slice(before)).toEqual(["/reports/q3"]);
    expect(await logging.waitForAccessLine((line) => line.requestId === "log-mode-no-key")).toMatchObject({
      path: "/reports/q3",
      status: 200,
      decision: "no_credential",
      wouldRefuse: 401,
    });
    expect(await decisions(logging, "no_credential", "log")).toBe(counted + 1);
  });

  it("forwards an unknown key without identity, and a valid key with its identity", async () => {
    const counted = await decisions(logging, "invalid_credential", "log");
    const unknown = await send(
      logging.url,
      "GET",
      "/x",
      bearer(generateToken({ prefix: "lk", environment: "live" })),
    );
    expect(unknown.status).toBe(200);
    expect(latchkeyHeaders(unknown)).toEqual([]);
    expect(await decisions(logging, "invalid_credential", "log")).toBe(counted + 1);

    const known = await send(logging.url, "GET", "/x", bearer(reader.token));
    expect(known.status).toBe(200);
    expect(echoed(known).headers["x-latchkey-key-id"]).toBe(reader.id);
    expect(echoed(known).headers["x-latchkey-team-id"]).toBe(teamId);
  });
});

describe("while NATS is down", () => {
  it("a revocation still reaches the sidecar within maxStale: new requests and open streams", async () => {
    const key = await issue("modes-nats-down", ["read"]);
    expect((await send(enforcing.url, "GET", "/anything", bearer(key.token))).status).toBe(200);
    const response = await fetch(`${enforcing.url}/events?interval=50`, { headers: bearer(key.token) });
    expect(response.status).toBe(200);
    const events = eventReader(response.body as ReadableStream<Uint8Array>);
    expect(await events.next()).toContain('"tick":0');

    await nats.stop();
    await service.tokens().revoke({ keyId: key.id });
    const revoked = performance.now();
    let refusedAfter = Number.NaN;
    for (;;) {
      const status = (await send(enforcing.url, "GET", "/anything", bearer(key.token))).status;
      if (status === 401) {
        refusedAfter = performance.now() - revoked;
        break;
      }
      expect(status).toBe(200);
      if (performance.now() - revoked > 5 * MAX_STALE_MS) break;
      await sleep(20);
    }
    // maxStale, then one Verify.
    expect(refusedAfter).toBeLessThan(MAX_STALE_MS + 1_000);
    // Streams are re-verified every max(maxStale, 1 s): at most one period later than new requests.
    let next = await events.next();
    while (next !== undefined) next = await events.next();
    expect(performance.now() - revoked).toBeLessThan(2 * Math.max(MAX_STALE_MS, 1_000) + 1_000);
    await nats.restart();
  });
});

describe("fail closed", () => {
  it("answers 503 with Retry-After once the token-service is gone, for a cached key after maxStale, and stays Ready", async () => {
    const fresh = await issue("modes-never-cached", ["read"]);
    const cached = await issue("modes-cached-before-outage", ["read"]);
    expect((await send(enforcing.url, "GET", "/anything", bearer(cached.token))).status).toBe(200);
    await service.close();
    serviceClosed = true;
    const before = upstream.seen.length;
    const response = await send(enforcing.url, "GET", "/anything", bearer(fresh.token));
    expect(response.status).toBe(503);
    expect(response.headers["retry-after"]).toBe("2");
    expect(response.json<{ error: { code: string } }>().error.code).toBe("unavailable");
    expect(upstream.seen.slice(before)).toEqual([]);
    // Public routes need no answer from the token-service. A key cached before the outage works only
    // until the sidecar's proof of currency is maxStale old: with no token-service left, nothing
    // vouches that it was not revoked meanwhile, so it is refused like any other (fail closed).
    expect((await send(enforcing.url, "GET", "/healthz")).status).toBe(200);
    const closedAt = performance.now();
    await waitUntil(
      async () => (await send(enforcing.url, "GET", "/anything", bearer(cached.token))).status === 503,
      { what: "the cached key refused", timeoutMs: 10_000, intervalMs: 50 },
    );
    expect(performance.now() - closedAt).toBeLessThan(MAX_STALE_MS + 2_000);
    // Readiness means "can serve its policy": the pod stays in its Service; the outage is reported.
    const ready = await send(enforcing.adminUrl, "GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.json()).toEqual({ status: "ready", tokenService: "unreachable" });
    const metrics = await send(enforcing.adminUrl, "GET", "/metrics");
    expect(metrics.body).toMatch(/^latchkey_sidecar_token_service_reachable 0$/m);
  });
});
