// Usage per key: counted by verifiers (cache hits included), reported in
// batches over JetStream, aggregated by the token-service into minute buckets,
// de-duplicated, surviving a token-service restart and a NATS outage.
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createNatsKeyEventBus, type NatsKeyEventBus, usageMessageId } from "@latchkey/events";
import {
  UsageCountSchema,
  UsageGranularity,
  UsageOutcome,
  UsageReportSchema,
  VerifyResult,
} from "@latchkey/proto";
import { createVerifier, type Verifier } from "@latchkey/verifier";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sweepUsage } from "../../services/token-service/src/usage/usage.repository.js";
import { freshDatabaseUrl, type NatsServer, startNats } from "../harness/index.js";
import { eventually } from "../harness/wait.js";
import { startTestService, type TestService } from "./start.js";

// A NATS server of this file's own: the usage consumer is one durable consumer
// per NATS server, and token-services of other test files must not take these reports.
let nats: NatsServer;
let databaseUrl: string;
let service: TestService;
const buses: NatsKeyEventBus[] = [];
const verifiers: Verifier[] = [];

const SETTINGS = { lastUsedFlushMs: 600_000, usageSweepMs: 60_000 };

function bus(): NatsKeyEventBus {
  const created = createNatsKeyEventBus({
    servers: nats.url,
    reconnectTimeWaitMs: 50,
    requestTimeoutMs: 1_000,
  });
  buses.push(created);
  return created;
}

function verifier(options: { usageBacklogMax?: number } = {}): Verifier {
  const created = createVerifier({
    tokenService: service.grpcUrl,
    events: bus(),
    usageFlushMs: 100,
    ttlMs: 600_000,
    maxStaleMs: 600_000,
    ...options,
  });
  verifiers.push(created);
  return created;
}

async function usageTotal(keyId: string): Promise<bigint> {
  const response = await service.tokens().getUsage({
    keyId,
    startTime: timestampFromMs(Date.now() - 3_600_000),
    granularity: UsageGranularity.MINUTE,
  });
  return response.total;
}

async function issue(name: string, scopes = ["read"]) {
  const teamId = (await service.teams().createTeam({ name })).team?.id ?? "";
  const issued = await service.tokens().issue({ teamId, name, scopes });
  return { teamId, keyId: issued.key?.id ?? "", token: issued.token };
}

/** A key in a team of its own and a verifier that has verified it once, that one use already counted. */
async function countedOnce(name: string, options: { usageBacklogMax?: number } = {}) {
  const issued = await issue(name);
  const v = verifier(options);
  await v.ready();
  expect((await v.verify(issued.token)).ok).toBe(true);
  await waitForTotal(issued.keyId, 1n);
  return { ...issued, v };
}

function waitForTotal(keyId: string, total: bigint, timeoutMs = 10_000): Promise<bigint> {
  return eventually(
    () => usageTotal(keyId),
    (counted) => counted === total,
    {
      what: `${total} requests counted`,
      timeoutMs,
    },
  );
}

beforeAll(async () => {
  nats = await startNats();
  databaseUrl = await freshDatabaseUrl("usage");
  service = await startTestService({ databaseUrl, natsUrl: nats.url, settings: SETTINGS });
});

afterAll(async () => {
  for (const v of verifiers) await v.close();
  for (const b of buses) await b.close();
  await service?.close();
  await nats?.stop();
});

describe("usage counted by verifiers", () => {
  it("counts every request, cache hits included, once, by outcome; last_used_at moves on hits", async () => {
    const { keyId, token } = await issue("hits");
    const v = verifier();
    await v.ready();
    expect((await v.verify(token)).ok).toBe(true); // a miss: the one Verify RPC
    const before = await service.sql.query("select last_used_at from api_keys where id = $1", [keyId]);
    // The token-service writes its own last_used_at only every 10 minutes here.
    expect(before.rows[0].last_used_at).toBeNull();
    for (let i = 0; i < 299; i++) expect(v.verifyCached(token, ["read"])?.ok).toBe(true);
    for (let i = 0; i < 50; i++) expect(v.verifyCached(token, ["admin"])?.code).toBe("INSUFFICIENT_SCOPE");
    v.usage.record(keyId, "ignored-team", UsageOutcome.RATE_LIMITED);

    await waitForTotal(keyId, 351n);
    const response = await service.tokens().getUsage({
      keyId,
      startTime: timestampFromMs(Date.now() - 3_600_000),
      granularity: UsageGranularity.HOUR,
    });
    const byOutcome = Object.fromEntries(
      response.buckets.flatMap((b) => b.counts).map((c) => [UsageOutcome[c.outcome], Number(c.count)]),
    );
    expect(byOutcome).toEqual({ ALLOWED: 300, INSUFFICIENT_SCOPE: 50, RATE_LIMITED: 1 });
    // The last use comes from the reports: the service itself saw one Verify and has not written it.
    const { key } = await service.tokens().get({ keyId });
    expect(key?.lastUsedTime).toBeDefined();
    expect(key?.requests24h).toBe(351n);
  });

  it("sums the reports of several verifiers for a team", async () => {
    const { teamId, token } = await issue("team-sum");
    const second = await service.tokens().issue({ teamId, name: "second", scopes: ["read"] });
    const [a, b] = [verifier(), verifier()];
    await Promise.all([a.ready(), b.ready()]);
    for (const [v, t, n] of [
      [a, token, 40],
      [b, token, 60],
      [b, second.token, 7],
    ] as const) {
      for (let i = 0; i < n; i++) expect((await v.verify(t)).ok).toBe(true);
    }
    await eventually(
      async () =>
        (
          await service.tokens().getUsage({
            teamId,
            startTime: timestampFromMs(Date.now() - 86_400_000),
            granularity: UsageGranularity.DAY,
          })
        ).total,
      (total) => total === 107n,
      { what: "107 requests for the team" },
    );
    const { keys } = await service.tokens().list({ teamId });
    expect(Object.fromEntries(keys.map((k) => [k.name, k.requests24h]))).toEqual({
      "team-sum": 100n,
      second: 7n,
    });
  });

  it("does not count a report twice, whatever message id it arrives under", async () => {
    const { teamId, keyId } = await issue("duplicates");
    const publisher = bus();
    const report = create(UsageReportSchema, {
      verifierId: "v_duplicatetest01",
      sequence: 1n,
      minute: timestampFromMs(Math.floor(Date.now() / 60_000) * 60_000),
      endTime: timestampFromMs(Date.now()),
      counts: [create(UsageCountSchema, { keyId, teamId, outcome: UsageOutcome.ALLOWED, count: 5 })],
    });
    const first = await publisher.publishUsage(report, usageMessageId(report));
    expect(first.duplicate).toBe(false);
    // JetStream drops the same id...
    expect((await publisher.publishUsage(report, usageMessageId(report))).duplicate).toBe(true);
    // ...and a copy under another id (past JetStream's window) is caught by the token-service's record.
    expect((await publisher.publishUsage(report, "another-id")).duplicate).toBe(false);
    const next = create(UsageReportSchema, { ...report, sequence: 2n });
    await publisher.publishUsage(next, usageMessageId(next));
    await waitForTotal(keyId, 10n);
    // Give the duplicate every chance to be (wrongly) counted.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await usageTotal(keyId)).toBe(10n);
    const scraped = await service.handle.metrics.metrics();
    expect(scraped).toMatch(/latchkey_token_service_usage_reports_total\{result="duplicate"\} [1-9]/);
    const batches = await service.sql.query("select count(*)::int as n from usage_batches where id like $1", [
      "v_duplicatetest01-%",
    ]);
    expect(batches.rows[0].n).toBe(2);
  });

  it("leaves out counts for keys that do not exist and takes the team from the key, not the report", async () => {
    const { teamId, keyId } = await issue("hostile");
    const publisher = bus();
    const report = create(UsageReportSchema, {
      verifierId: "v_hostilereport01",
      sequence: 1n,
      minute: timestampFromMs(Math.floor(Date.now() / 60_000) * 60_000),
      counts: [
        create(UsageCountSchema, { keyId, teamId: "team_0000000000000000000000", outcome: 1, count: 3 }),
        create(UsageCountSchema, { keyId: "key_0000000000000000000000", teamId, outcome: 1, count: 1 }),
        create(UsageCountSchema, { keyId: "not a key", teamId, outcome: 1, count: 1 }),
        create(UsageCountSchema, { keyId, teamId, outcome: 99 as UsageOutcome, count: 1 }),
      ],
    });
    await publisher.publishUsage(report, usageMessageId(report));
    await waitForTotal(keyId, 3n);
    const rows = await service.sql.query("select team_id, count from usage_minutes where key_id = $1", [
      keyId,
    ]);
    expect(rows.rows).toEqual([{ team_id: teamId, count: "3" }]);
  });
});

describe("several token-service replicas", () => {
  it("share the one durable consumer and count every report once", async () => {
    const second = await startTestService({ databaseUrl, natsUrl: nats.url, settings: SETTINGS });
    try {
      const { teamId, keyId } = await issue("replicas");
      const publisher = bus();
      const minute = timestampFromMs(Math.floor(Date.now() / 60_000) * 60_000);
      const reports = Array.from({ length: 40 }, (_, i) =>
        create(UsageReportSchema, {
          verifierId: `v_replicas${i % 4}`,
          sequence: BigInt(i + 1),
          minute,
          counts: [create(UsageCountSchema, { keyId, teamId, outcome: UsageOutcome.ALLOWED, count: i + 1 })],
        }),
      );
      // Every report twice: once under its own id, once under another (past JetStream's window).
      for (const report of reports) await publisher.publishUsage(report, usageMessageId(report));
      for (const report of reports) await publisher.publishUsage(report, `${usageMessageId(report)}-again`);
      await waitForTotal(keyId, 820n);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await usageTotal(keyId)).toBe(820n);
    } finally {
      await second.close();
    }
  });
});

describe("reports survive", () => {
  it("a token-service restart: reports sent while it is down are counted once it is back", async () => {
    const { keyId, token, v } = await countedOnce("restart");
    await service.handle.close();
    await service.sql.end();
    try {
      for (let i = 0; i < 120; i++) expect(v.verifyCached(token)?.ok).toBe(true);
      // Published to the stream while no token-service reads it.
      await eventually(
        () => v.usage.stats(),
        (s) => s.backlogBatches === 0 && s.publishedBatches >= 2,
      );
    } finally {
      service = await startTestService({ databaseUrl, natsUrl: nats.url, settings: SETTINGS });
    }
    await waitForTotal(keyId, 121n);
  });

  it("a NATS outage: the backlog grows and says so in a metric, then drains, counts exact", async () => {
    const { keyId, token, v } = await countedOnce("outage");
    await nats.stop();
    try {
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 20; i++) expect(v.verifyCached(token)?.ok).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 120));
      }
      await eventually(
        () => v.usage.stats(),
        (s) => s.backlogBatches >= 2 && s.publishFailures >= 1,
        {
          what: "a backlog",
        },
      );
      const metrics = await v.metrics.metrics();
      expect(metrics).toMatch(/latchkey_verifier_usage_backlog_batches [1-9]/);
      expect(metrics).toMatch(/latchkey_verifier_usage_publish_failures_total [1-9]/);
    } finally {
      await nats.restart();
    }
    await waitForTotal(keyId, 101n, 30_000);
    expect(v.usage.stats()).toMatchObject({ backlogBatches: 0, droppedBatches: 0 });
  });

  it("a full backlog drops the oldest batch and counts what it dropped", async () => {
    const { keyId, token, v } = await countedOnce("dropped", { usageBacklogMax: 2 });
    await nats.stop();
    try {
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 10; i++) v.verifyCached(token);
        await v.usage.flush();
      }
      expect(v.usage.stats()).toMatchObject({ backlogBatches: 2, droppedBatches: 2, droppedRequests: 20 });
      expect(await v.metrics.metrics()).toMatch(/latchkey_verifier_usage_dropped_requests_total 20/);
    } finally {
      await nats.restart();
    }
    await waitForTotal(keyId, 21n, 30_000);
  });
});

describe("rotate, then watch the old key", () => {
  it("Rotate and Get tell how much traffic the replaced key still gets", async () => {
    const { keyId, token } = await issue("rotated");
    const v = verifier();
    await v.ready();
    for (let i = 0; i < 12; i++) expect((await v.verify(token)).ok).toBe(true);
    await waitForTotal(keyId, 12n);
    const rotated = await service.tokens().rotate({ keyId });
    expect(rotated.previousKeyTraffic?.keyId).toBe(keyId);
    expect(rotated.previousKeyTraffic?.requestsLast5m).toBe(12n);
    expect(rotated.previousKeyTraffic?.lastUsedTime).toBeDefined();
    const got = await service.tokens().get({ keyId: rotated.key?.id ?? "" });
    expect(got.predecessorTraffic?.keyId).toBe(keyId);
    expect(got.predecessorTraffic?.requestsLast5m).toBe(12n);
    expect(got.traffic?.requestsLast5m).toBe(0n);
    const at = got.predecessorTraffic?.lastUsedTime;
    expect(at && timestampDate(at).getTime()).toBeLessThanOrEqual(Date.now());
    // A key that never rotated has no predecessor.
    expect((await service.tokens().get({ keyId })).predecessorTraffic).toBeUndefined();
  });
});

describe("the token-service's own Verify", () => {
  it("is not counted as usage (only verifiers count), so a verifier's miss is counted once", async () => {
    const { keyId, token } = await issue("direct");
    expect((await service.tokens(null).verify({ token })).result).toBe(VerifyResult.VALID);
    const v = verifier();
    await v.ready();
    expect((await v.verify(token)).ok).toBe(true);
    await waitForTotal(keyId, 1n);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await usageTotal(keyId)).toBe(1n);
  });
});

describe("retention", () => {
  it("sweeps minute buckets past usageRetentionDays and report ids past the stream's age", async () => {
    const { teamId, keyId } = await issue("retention");
    await service.sql.query(
      `insert into usage_minutes (key_id, minute, outcome, team_id, count) values
         ($1, date_trunc('minute', now()) - interval '40 days', 1, $2, 7),
         ($1, date_trunc('minute', now()) - interval '1 day', 1, $2, 5)`,
      [keyId, teamId],
    );
    await service.sql.query(
      "insert into usage_batches (id, received_at) values ('v_old-1', now() - interval '3 days'), ('v_new-1', now())",
    );
    const deleted = await sweepUsage(service.handle.database.db, {
      retentionMs: 35 * 86_400_000,
      dedupeMs: 86_400_000 + 3_600_000,
    });
    expect(deleted.minutes).toBeGreaterThanOrEqual(1);
    const left = await service.sql.query("select count from usage_minutes where key_id = $1", [keyId]);
    expect(left.rows).toEqual([{ count: "5" }]);
    const ids = await service.sql.query("select id from usage_batches where id in ('v_old-1', 'v_new-1')");
    expect(ids.rows).toEqual([{ id: "v_new-1" }]);
  });
});
