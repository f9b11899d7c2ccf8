// Usage through real sidecar processes: each decided request that names a key
// is counted once (cache hits included), by outcome, summed across sidecars;
// a usage-limited key is refused with 429 usage_exceeded after exactly its uses.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { UsageGranularity, UsageOutcome } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send } from "../harness/http-client.js";
import { type NatsServer, startNats } from "../harness/index.js";
import { eventually } from "../harness/wait.js";
import { type RecordingUpstream, startRecordingUpstream } from "../sidecar/recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import { startTestService, type TestService } from "./start.js";

const POLICY = `
rules:
  - name: admin
    path: /admin/**
    kind: key
    scopes: [admin]
  - name: private
    path: /**
    kind: key
`;

let nats: NatsServer;
let service: TestService;
let upstream: RecordingUpstream;
const sidecars: SidecarProcess[] = [];
let teamId: string;

beforeAll(async () => {
  nats = await startNats();
  service = await startTestService({ natsUrl: nats.url, settings: { lastUsedFlushMs: 600_000 } });
  upstream = await startRecordingUpstream();
  for (let i = 0; i < 2; i++) {
    sidecars.push(
      await spawnSidecar({
        upstream: upstream.url,
        tokenServiceUrl: service.grpcUrl,
        natsUrl: nats.url,
        policy: POLICY,
        env: { LATCHKEY_USAGE_FLUSH_MS: "200" },
      }),
    );
  }
  teamId = (await service.teams().createTeam({ name: "sidecar-usage" })).team?.id ?? "";
}, 60_000);

afterAll(async () => {
  for (const sidecar of sidecars) await sidecar.stop();
  await upstream?.app.close();
  await service?.close();
  await nats?.stop();
});

const get = (sidecar: SidecarProcess, path: string, token: string) =>
  send(sidecar.url, "GET", path, { authorization: `Bearer ${token}` });

describe("a sidecar counts", () => {
  it("each request with a key once, by the outcome it decided, across sidecars", async () => {
    const { key, token } = await service.tokens().issue({ teamId, name: "counted", scopes: ["read"] });
    const keyId = key?.id ?? "";
    const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
    for (let i = 0; i < 30; i++) expect((await get(i % 2 === 0 ? a : b, "/things", token)).status).toBe(200);
    for (let i = 0; i < 4; i++) expect((await get(b, "/admin/x", token)).status).toBe(403);
    // Not a key: nothing to count.
    expect((await get(a, "/things", "lk_live_notakey")).status).toBe(401);
    const response = await eventually(
      () =>
        service.tokens().getUsage({
          keyId,
          startTime: timestampFromMs(Date.now() - 3_600_000),
          granularity: UsageGranularity.HOUR,
        }),
      (r) => r.total === 34n,
      { what: "34 requests counted" },
    );
    const byOutcome = Object.fromEntries(
      response.buckets
        .flatMap((bucket) => bucket.counts)
        .map((c) => [UsageOutcome[c.outcome], Number(c.count)]),
    );
    expect(byOutcome).toEqual({ ALLOWED: 30, INSUFFICIENT_SCOPE: 4 });
    // Most of them were cache hits, which never reached the token-service; last_used_at moved anyway.
    expect((await service.tokens().get({ keyId })).key?.lastUsedTime).toBeDefined();
    const scraped = await (await fetch(`${a.adminUrl}/metrics`)).text();
    expect(scraped).toMatch(/latchkey_verifier_usage_backlog_batches 0/);
  });

  it("a request refused by the key's own rate limit as RATE_LIMITED", async () => {
    const { key, token } = await service.tokens().issue({
      teamId,
      name: "rate-limited",
      scopes: ["read"],
      rateLimits: [{ name: "hourly", limit: 2n, window: { seconds: 3600n, nanos: 0 } }],
    });
    const [a] = sidecars as [SidecarProcess];
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await get(a, "/things", token)).status);
    expect(statuses).toEqual([200, 200, 429]);
    const response = await eventually(
      () =>
        service.tokens().getUsage({
          keyId: key?.id ?? "",
          startTime: timestampFromMs(Date.now() - 3_600_000),
          granularity: UsageGranularity.HOUR,
        }),
      (r) => r.total === 3n,
      { what: "3 requests counted" },
    );
    const byOutcome = Object.fromEntries(
      response.buckets
        .flatMap((bucket) => bucket.counts)
        .map((c) => [UsageOutcome[c.outcome], Number(c.count)]),
    );
    expect(byOutcome).toEqual({ ALLOWED: 2, RATE_LIMITED: 1 });
  });

  it("refuses a usage-limited key with 429 usage_exceeded after exactly its uses", async () => {
    const { key, token } = await service.tokens().issue({
      teamId,
      name: "limited",
      scopes: ["read"],
      usageLimit: { remaining: 3n },
    });
    const [a, b] = sidecars as [SidecarProcess, SidecarProcess];
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await get(i % 2 === 0 ? a : b, "/things", token)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429]);
    const refused = await get(a, "/things", token);
    expect(refused.status).toBe(429);
    expect(refused.json()).toMatchObject({
      error: { code: "usage_exceeded", message: "The key has used all of its allowed requests." },
    });
    expect(refused.headers["retry-after"]).toBeUndefined();
    await eventually(
      async () =>
        (
          await service.tokens().getUsage({
            keyId: key?.id ?? "",
            startTime: timestampFromMs(Date.now() - 3_600_000),
            granularity: UsageGranularity.MINUTE,
          })
        ).total,
      (total) => total === 7n,
    );
  });
});
