// Refused admin calls reach the audit log (unauthenticated and permission denied), with the
// presented key's hint and never the key; a flood of them writes a bounded number of rows; and the
// retention sweeper ages entries out in small batches. Real token-service, real PostgreSQL.
import { Code } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { AuditEvent } from "@latchkey/proto";
import { generateToken, hashToken, tokenHint } from "@latchkey/token";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuditSweeper } from "../../services/token-service/src/audit/audit-sweeper.js";
import {
  createRefusedCallRecorder,
  type RefusedCall,
} from "../../services/token-service/src/audit/refused-call-recorder.js";
import { eventually } from "../harness/wait.js";
import { rpcError } from "./rpc-error.js";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

const refusalsOf = async (service: TestService, filters: { teamId?: string; actor?: string } = {}) => {
  const { events } = await service.audit().listAuditEvents({ ...filters, pageSize: 500 });
  return events.filter((event) => event.action.startsWith("call."));
};
const countOf = (event: AuditEvent) => Number(event.details?.count ?? 0);
const procedureOf = (event: AuditEvent) => String(event.details?.procedure ?? "");

describe("refused admin calls in the audit log", () => {
  let service: TestService;
  let team: { teamId: string; adminKey: string; adminKeyId: string };
  let other: { teamId: string; adminKey: string; adminKeyId: string };
  let revokedAdmin: { token: string; id: string };
  let reader: { token: string; id: string };
  /** Every key-like string presented in this block: none may reach the log. */
  const presented: string[] = [];

  beforeAll(async () => {
    service = await startTestService();
    team = await service.teamWithAdmin("refusals", ["write"]);
    other = await service.teamWithAdmin("refusals-other");
    const issue = async (name: string, scopes: string[]) => {
      const issued = await service.tokens().issue({ teamId: team.teamId, name, scopes });
      return { token: issued.token, id: issued.key?.id ?? "" };
    };
    revokedAdmin = await issue("old-admin", ["admin"]);
    await service.tokens().revoke({ keyId: revokedAdmin.id });
    reader = await issue("reader", ["read"]);
    presented.push(team.adminKey, other.adminKey, revokedAdmin.token, reader.token, ROOT_KEY);
  });
  afterAll(() => service?.close());

  it("records an unauthenticated call without a key, with garbage, and with an unknown key: the hint only", async () => {
    const unknown = generateToken({ prefix: "lk", environment: "live" });
    const garbage = "hunter2-this-is-not-a-key-but-a-password";
    presented.push(unknown, garbage);
    for (const bearer of [null, garbage, unknown, unknown]) {
      const error = await rpcError(service.tokens(bearer).list({ teamId: team.teamId }));
      expect(error.code).toBe(Code.Unauthenticated);
    }
    const rows = await eventually(
      () => refusalsOf(service, { actor: "anonymous" }),
      (events) => events.reduce((sum, event) => sum + countOf(event), 0) === 4,
      { what: "four refused calls recorded" },
    );
    expect(rows.every((event) => event.action === "call.unauthenticated" && event.teamId === "")).toBe(true);
    expect(rows.every((event) => procedureOf(event) === "latchkey.v1.TokenService/List")).toBe(true);
    // Per credential, the calls counted (identical refusals within one flush share a row).
    const counted = new Map<string, number>();
    for (const event of rows) {
      const name = `${event.details?.credential} ${event.details?.keyHint ?? "-"}`;
      counted.set(name, (counted.get(name) ?? 0) + countOf(event));
    }
    expect(Object.fromEntries(counted)).toEqual({
      "missing -": 1,
      "malformed -": 1,
      [`key ${tokenHint(unknown)}`]: 2,
    });
  });

  it("records a revoked admin key as the actor, in its team, where the team's admin can read it", async () => {
    const error = await rpcError(service.tokens(revokedAdmin.token).get({ keyId: reader.id }));
    expect(error.code).toBe(Code.Unauthenticated);
    const [row] = await eventually(
      () => refusalsOf(service, { actor: revokedAdmin.id }),
      (events) => events.length === 1,
    );
    expect(row).toMatchObject({ action: "call.unauthenticated", teamId: team.teamId });
    expect(row?.details).toMatchObject({
      procedure: "latchkey.v1.TokenService/Get",
      code: "unauthenticated",
      credential: "key",
      keyHint: tokenHint(revokedAdmin.token),
      count: 1,
    });
    const seenByAdmin = await service.audit(team.adminKey).listAuditEvents({ actor: revokedAdmin.id });
    expect(seenByAdmin.events.map((event) => event.id)).toEqual([row?.id]);
    // Another team's admin sees none of it.
    expect((await service.audit(other.adminKey).listAuditEvents({ actor: revokedAdmin.id })).events).toEqual(
      [],
    );
  });

  it("records permission denied: a key without admin, another team, a scope the admin lacks, a root-only RPC", async () => {
    const cases: Array<[() => Promise<unknown>, string]> = [
      [() => service.tokens(reader.token).list({}), "latchkey.v1.TokenService/List"],
      [() => service.tokens(team.adminKey).list({ teamId: other.teamId }), "latchkey.v1.TokenService/List"],
      [
        () =>
          service
            .tokens(team.adminKey)
            .issue({ teamId: team.teamId, name: "too-much", scopes: ["billing:write"] }),
        "latchkey.v1.TokenService/Issue",
      ],
      [
        () => service.teams(team.adminKey).createTeam({ name: "not-allowed" }),
        "latchkey.v1.TeamService/CreateTeam",
      ],
      // Over native gRPC too: both listeners mount the same audited services.
      [
        () =>
          service
            .audit(team.adminKey, createGrpcTransport({ baseUrl: service.grpcUrl }))
            .listAuditEvents({ teamId: other.teamId }),
        "latchkey.v1.AuditService/ListAuditEvents",
      ],
    ];
    for (const [call] of cases) expect((await rpcError(call())).code).toBe(Code.PermissionDenied);
    const byReader = await eventually(
      () => refusalsOf(service, { actor: reader.id }),
      (events) => events.length === 1,
    );
    expect(byReader[0]).toMatchObject({ action: "call.permission_denied", teamId: team.teamId });
    expect(byReader[0]?.details).toMatchObject({ keyHint: tokenHint(reader.token), credential: "key" });
    const byAdmin = await eventually(
      () => refusalsOf(service, { actor: team.adminKeyId }),
      (events) => events.length === 4,
    );
    expect(byAdmin.map(procedureOf).sort()).toEqual(
      cases
        .slice(1)
        .map(([, procedure]) => procedure)
        .sort(),
    );
    for (const event of byAdmin) {
      expect(event).toMatchObject({ action: "call.permission_denied", teamId: team.teamId });
      expect(event.details).toMatchObject({ code: "permission_denied", keyHint: tokenHint(team.adminKey) });
    }
    expect(String(byAdmin.find((event) => procedureOf(event).endsWith("/Issue"))?.details?.message)).toMatch(
      /billing:write/,
    );
  });

  it("does not audit Verify, which needs no admin key", async () => {
    const before = (await refusalsOf(service)).length;
    await service.tokens(null).verify({ token: generateToken({ prefix: "lk", environment: "live" }) });
    await service.tokens("garbage").verify({ token: "garbage" });
    // Two flush intervals: anything recorded would be written by now.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect((await refusalsOf(service)).length).toBe(before);
  });

  it("never stores a presented key or its hash: the whole audit table is searched", async () => {
    await eventually(
      () => refusalsOf(service),
      (events) => events.length >= 9,
    );
    const { rows } = await service.sql.query<{ row: string }>(
      "select row_to_json(a)::text as row from audit_log a",
    );
    const text = rows.map((row) => row.row).join("\n");
    for (const value of presented) {
      expect(text).not.toContain(value);
      expect(text).not.toContain(hashToken(value).toString("hex"));
      expect(text).not.toContain(hashToken(value).toString("base64"));
    }
  });
});

describe("the refused-call recorder", () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService();
  });
  afterAll(() => service?.close());

  const call = (keyHint: string): RefusedCall => ({
    procedure: "latchkey.v1.TokenService/List",
    code: "unauthenticated",
    message: "the bearer key is not valid (unknown, revoked, disabled or expired)",
    actor: "anonymous",
    teamId: undefined,
    credential: "key",
    keyHint,
    requestId: `req-${keyHint}`,
    peer: "127.0.0.1",
  });
  const rowsOf = async (action: string) =>
    (
      await service.sql.query<{ details: Record<string, unknown>; request_id: string | null }>(
        "select details, request_id from audit_log where action = $1 order by id",
        [action],
      )
    ).rows;

  it("writes identical refusals as one row with a count, at most its budget a minute, the rest counted once a minute", async () => {
    let now = Date.parse("2026-12-03T10:00:00Z");
    const recorder = createRefusedCallRecorder({
      db: service.handle.database.db,
      logger: pino({ level: "silent" }),
      maxRowsPerMinute: 2,
      flushMs: 3_600_000,
      now: () => now,
    });
    try {
      for (let i = 0; i < 5; i++) recorder.record(call("lk_live_…aaaa"));
      recorder.record(call("lk_live_…bbbb"));
      recorder.record(call("lk_live_…cccc"));
      await recorder.flush();
      // A budget of 2: the first two distinct refusals are rows; the third is counted as dropped.
      const written = await rowsOf("call.unauthenticated");
      expect(written.map((row) => [row.details.keyHint, row.details.count, row.request_id])).toEqual([
        ["lk_live_…aaaa", 5, "req-lk_live_…aaaa"],
        ["lk_live_…bbbb", 1, "req-lk_live_…bbbb"],
      ]);
      expect((await rowsOf("call.refusals_dropped")).map((row) => row.details.count)).toEqual([1]);
      // Thirty seconds refill one row of the budget; the dropped count waits for its minute.
      now += 30_000;
      recorder.record(call("lk_live_…dddd"));
      recorder.record(call("lk_live_…eeee"));
      await recorder.flush();
      expect((await rowsOf("call.unauthenticated")).map((row) => row.details.keyHint)).toEqual([
        "lk_live_…aaaa",
        "lk_live_…bbbb",
        "lk_live_…dddd",
      ]);
      expect((await rowsOf("call.refusals_dropped")).map((row) => row.details.count)).toEqual([1]);
      now += 30_000;
      await recorder.flush();
      expect((await rowsOf("call.refusals_dropped")).map((row) => row.details.count)).toEqual([1, 1]);
    } finally {
      await recorder.close();
    }
  });
});

describe("a flood of refused calls", () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService({ settings: { auditRefusedCallsPerMinute: 3 } });
  });
  afterAll(() => service?.close());

  it("writes at most the per-minute rows plus one row counting the rest", async () => {
    // 60 different unknown keys: 60 distinct refusals, none of which aggregate.
    const calls = Array.from({ length: 60 }, () =>
      rpcError(service.tokens(generateToken({ prefix: "lk", environment: "live" })).list({})),
    );
    for (const error of await Promise.all(calls)) expect(error.code).toBe(Code.Unauthenticated);
    const metric = async () =>
      (await service.handle.metrics.getSingleMetric("latchkey_token_service_admin_refusals_total")?.get())
        ?.values ?? [];
    const values = await eventually(
      metric,
      (found) => found.reduce((sum, value) => sum + value.value, 0) === 60,
      {
        what: "60 refusals counted",
      },
    );
    const recorded = values.filter((value) => value.labels.recorded === "yes");
    expect(recorded.reduce((sum, value) => sum + value.value, 0)).toBe(3);
    const { events } = await service.audit().listAuditEvents({ pageSize: 500 });
    const refusals = events.filter((event) => event.action === "call.unauthenticated");
    const dropped = events.filter((event) => event.action === "call.refusals_dropped");
    expect(refusals).toHaveLength(3);
    expect(dropped).toHaveLength(1);
    expect(countOf(dropped[0] as AuditEvent)).toBeGreaterThan(0);
    expect(countOf(dropped[0] as AuditEvent)).toBeLessThanOrEqual(57);
    expect(String(dropped[0]?.details?.reason)).toMatch(/LATCHKEY_AUDIT_REFUSED_CALLS_PER_MINUTE/);
  });
});

const insertAged = async (service: TestService, daysAgo: number, count: number, action: string) => {
  await service.sql.query(
    `insert into audit_log (actor, action, details, created_at)
     select 'root', $1, '{}', now() - make_interval(days => $2) from generate_series(1, $3)`,
    [action, daysAgo, count],
  );
};
const countAction = async (service: TestService, action: string) =>
  Number(
    (
      await service.sql.query<{ n: string }>("select count(*) as n from audit_log where action = $1", [
        action,
      ])
    ).rows[0]?.n,
  );

describe("retention", () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService({
      settings: { auditRetentionDays: 30, auditSweepMs: 1_000, auditSweepBatch: 2 },
    });
  });
  afterAll(() => service?.close());

  it("the service's sweeper deletes entries past LATCHKEY_AUDIT_RETENTION_DAYS and keeps the rest", async () => {
    await insertAged(service, 45, 7, "test.old");
    await insertAged(service, 29, 3, "test.recent");
    await eventually(
      () => countAction(service, "test.old"),
      (n) => n === 0,
      { what: "old entries swept", timeoutMs: 20_000 },
    );
    expect(await countAction(service, "test.recent")).toBe(3);
  });
});

describe("retention 0 and the sweep's batches", () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService({ settings: { auditRetentionDays: 0, auditSweepMs: 1_000 } });
  });
  afterAll(() => service?.close());

  it("keeps everything with LATCHKEY_AUDIT_RETENTION_DAYS=0; a sweep deletes in batches until one comes back short", async () => {
    await insertAged(service, 4_000, 9, "test.ancient");
    // Two of the sweep intervals a sweeper would have had: nothing is deleted.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(await countAction(service, "test.ancient")).toBe(9);
    const sweeper = createAuditSweeper({
      db: service.handle.database.db,
      logger: pino({ level: "silent" }),
      retentionDays: 365,
      intervalMs: 0,
      batchSize: 4,
      pauseMs: 0,
    });
    try {
      expect(await sweeper.sweep()).toEqual({ deleted: 9, batches: 3 });
      expect(await countAction(service, "test.ancient")).toBe(0);
      // Entries younger than the retention stay: the team and key rows of this service's start.
      expect(await sweeper.sweep()).toEqual({ deleted: 0, batches: 1 });
    } finally {
      await sweeper.close();
    }
  });
});
