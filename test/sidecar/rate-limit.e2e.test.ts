// Rate limits end to end: three sidecar processes in front of one app, sharing counts over a real
// NATS, with keys from a real token-service on PostgreSQL. Last, a NATS outage, where each sidecar
// falls back to its local share and says so.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RawResponse, send } from "../harness/http-client.js";
import { type NatsServer, startNats } from "../harness/index.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { bearer } from "./credentials.js";
import { type RecordingUpstream, startRecordingUpstream } from "./recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "./sidecar-process.js";

const ROUTE_LIMIT = 30;
const POLICY = `
rules:
  - name: limited
    path: /limited/**
    kind: key
    scopes: [read]
    rateLimit: [{ name: burst, limit: ${ROUTE_LIMIT}, window: 1h }]
  - name: anonymous
    path: /public/**
    kind: public
    rateLimit: { tier: unverified }
  - name: tiered
    path: /tiered/**
    kind: key
`;
// Seed 003's trust tiers.
const RATE_LIMITS = `
tiers:
  connected: [{ name: minute, limit: 300, window: 1m }]
  verified: [{ name: minute, limit: 1, window: 1m }]
  unverified: [{ name: five-minutes, limit: 1, window: 5m }]
`;
/** Long enough for a sync (50 ms) to cross NATS and be applied on a busy machine. */
const SYNC_WAIT_MS = 1_000;

let nats: NatsServer;
let service: TestService;
let upstream: RecordingUpstream;
let dir: string;
/** a and b trust loopback as a proxy (the default); c trusts no address it will see. */
let sidecars: SidecarProcess[];
let teamId: string;

async function issue(name: string, scopes: string[], metadata: Record<string, string> = {}) {
  const issued = await service.tokens().issue({ teamId, name, scopes, metadata });
  return issued.token;
}

async function gauge(sidecar: SidecarProcess, name: string): Promise<number> {
  const text = (await send(sidecar.adminUrl, "GET", "/metrics")).body;
  const line = text.split("\n").find((entry) => entry.startsWith(`${name} `));
  return Number(line?.split(" ").at(-1) ?? Number.NaN);
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Waits until the gauge `name` reads `value` on every sidecar. */
async function untilEvery(name: string, value: number): Promise<void> {
  await until(
    async () => (await Promise.all(sidecars.map((s) => gauge(s, name)))).every((n) => n === value),
    `${name} ${value} on every sidecar`,
  );
}

async function admittedOf(sidecar: SidecarProcess, count: number, token: string, path: string) {
  let admitted = 0;
  for (let i = 0; i < count; i += 1) {
    const response = await send(sidecar.url, "GET", path, bearer(token));
    if (response.status === 200) admitted += 1;
    else expect(response.status).toBe(429);
  }
  return admitted;
}

beforeAll(async () => {
  [nats, upstream] = await Promise.all([startNats(), startRecordingUpstream()]);
  service = await startTestService({ natsUrl: nats.url });
  teamId = (await service.teams().createTeam({ name: "rate-limit-e2e" })).team?.id ?? "";
  dir = await mkdtemp(join(tmpdir(), "latchkey-ratelimit-e2e-"));
  const limitsFile = join(dir, "rate-limits.yaml");
  await writeFile(limitsFile, RATE_LIMITS);
  const common = {
    upstream: upstream.url,
    tokenServiceUrl: service.grpcUrl,
    natsUrl: nats.url,
    policy: POLICY,
  };
  const env = { LATCHKEY_RATE_LIMITS: limitsFile, LATCHKEY_RATE_LIMIT_SYNC_MS: "50" };
  sidecars = await Promise.all([
    spawnSidecar({ ...common, env }),
    spawnSidecar({ ...common, env }),
    spawnSidecar({ ...common, env: { ...env, LATCHKEY_TRUSTED_PROXIES: "192.0.2.1" } }),
  ]);
  // Each hears the other two (an empty count message at least once a second).
  await untilEvery("latchkey_sidecar_rate_limit_peers", 3);
});

afterAll(async () => {
  await Promise.all((sidecars ?? []).map((sidecar) => sidecar.stop()));
  await service?.close();
  await upstream?.app.close();
  await nats?.dispose();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("rate limits across sidecars", () => {
  it("holds a route's limit across three sidecar processes", async () => {
    const token = await issue("rl-shared", ["read"]);
    const [a, b, c] = sidecars as [SidecarProcess, SidecarProcess, SidecarProcess];
    expect(await admittedOf(a, 10, token, "/limited/x")).toBe(10);
    await sleep(SYNC_WAIT_MS);
    const seenByB = await send(b.url, "GET", "/limited/x", bearer(token));
    expect(seenByB.status).toBe(200);
    // b counts a's ten: 30 − 10 − this one.
    expect(seenByB.headers.ratelimit).toMatch(/^"burst";r=19;t=\d+$/);
    expect(await admittedOf(b, 9, token, "/limited/x")).toBe(9);
    await sleep(SYNC_WAIT_MS);
    expect(await admittedOf(c, 15, token, "/limited/x")).toBe(10);
    await sleep(SYNC_WAIT_MS);
    for (const sidecar of sidecars) {
      expect((await send(sidecar.url, "GET", "/limited/x", bearer(token))).status).toBe(429);
    }
  });

  it("takes a key's limits from its tier and refuses with computed 429 headers", async () => {
    const token = await issue("rl-verified", ["read"], { tier: "verified" });
    const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
    const first = await send(a.url, "GET", "/tiered/x", bearer(token));
    expect(first.status).toBe(200);
    expect(first.headers["ratelimit-policy"]).toBe('"minute";q=1;w=60');
    expect(first.headers.ratelimit).toMatch(/^"minute";r=0;t=\d+$/);
    await sleep(SYNC_WAIT_MS);
    const refused: RawResponse = await send(b.url, "GET", "/tiered/x", bearer(token));
    expect(refused.status).toBe(429);
    expect(refused.headers["ratelimit-policy"]).toBe('"minute";q=1;w=60');
    const retryAfter = Number(refused.headers["retry-after"]);
    // One request counted this minute: the next fits once the next minute no longer weighs it, 60–120 s away.
    expect(retryAfter).toBeGreaterThanOrEqual(60);
    expect(retryAfter).toBeLessThanOrEqual(120);
    expect(refused.headers.ratelimit).toBe(`"minute";r=0;t=${retryAfter}`);
    expect(refused.headers["content-type"]).toBe("application/json");
    const body = refused.json<{ error: { code: string; message: string; requestId: string } }>();
    expect(body.error.code).toBe("rate_limited");
    expect(body.error.requestId).toBe(refused.headers["x-request-id"]);
    // A key with a tier the file does not name gets no limit here (no scope defaults are set).
    const other = await issue("rl-gold", ["read"], { tier: "gold" });
    const unlimited = await send(a.url, "GET", "/tiered/x", bearer(other));
    expect(unlimited.status).toBe(200);
    expect(unlimited.headers.ratelimit).toBeUndefined();
  });

  it("counts a public route per client address, and believes X-Forwarded-For only from a trusted proxy", async () => {
    const [a, , c] = sidecars as [SidecarProcess, SidecarProcess, SidecarProcess];
    // c trusts no loopback proxy: the X-Forwarded-For is the client's own claim and changes nothing.
    expect((await send(c.url, "GET", "/public/agents/1/proxy")).status).toBe(200);
    const refused = await send(c.url, "GET", "/public/agents/1/proxy", { "x-forwarded-for": "203.0.113.77" });
    expect(refused.status).toBe(429);
    expect(refused.headers["ratelimit-policy"]).toBe('"five-minutes";q=1;w=300');
    // a trusts loopback (the default LATCHKEY_TRUSTED_PROXIES): the address its proxy appended counts.
    const viaProxy = await send(a.url, "GET", "/public/agents/1/proxy", {
      "x-forwarded-for": "203.0.113.77",
    });
    expect(viaProxy.status).toBe(200);
    const again = await send(a.url, "GET", "/public/agents/1/proxy", { "x-forwarded-for": "203.0.113.77" });
    expect(again.status).toBe(429);
  });
});

describe("a key's own limits", () => {
  it("reach the sidecars in Verify answers and replace its tier's", async () => {
    const issued = await service.tokens().issue({
      teamId,
      name: "rl-own",
      scopes: ["read"],
      metadata: { tier: "verified" },
      rateLimits: [{ name: "own", limit: 2n, window: { seconds: 3600n, nanos: 0 } }],
    });
    const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
    const first = await send(a.url, "GET", "/tiered/x", bearer(issued.token));
    expect(first.headers["ratelimit-policy"]).toBe('"own";q=2;w=3600');
    expect(first.headers.ratelimit).toMatch(/^"own";r=1;t=\d+$/);
    expect((await send(a.url, "GET", "/tiered/x", bearer(issued.token))).status).toBe(200);
    await sleep(SYNC_WAIT_MS);
    expect((await send(b.url, "GET", "/tiered/x", bearer(issued.token))).status).toBe(429);
  });
});

describe("a NATS outage", () => {
  it("makes each sidecar admit its local share (limit / peers) and say so, until NATS is back", async () => {
    const token = await issue("rl-outage", ["read"]);
    await nats.stop();
    await untilEvery("latchkey_sidecar_rate_limit_shared", 0);
    // The log is flushed once a second.
    await until(
      async () => sidecars.every((s) => s.output().includes("rate limits: NATS unreachable")),
      "the outage in every log",
    );
    for (const sidecar of sidecars) {
      expect(sidecar.output().split("rate limits: NATS unreachable").length - 1).toBe(1);
    }
    const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
    // 30 / 3 peers: ten each, however many ask.
    expect(await admittedOf(a, 14, token, "/limited/y")).toBe(ROUTE_LIMIT / 3);
    expect(await admittedOf(b, 14, token, "/limited/y")).toBe(ROUTE_LIMIT / 3);
    await nats.restart();
    await untilEvery("latchkey_sidecar_rate_limit_shared", 1);
  });
});
