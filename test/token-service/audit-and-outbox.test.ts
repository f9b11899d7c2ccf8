// Every admin action leaves an audit row, and every key change that caches
// must hear about leaves an outbox row written by the same transaction.

import { KeyEventType } from "@latchkey/proto";
import { hashToken } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../harness/wait.js";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(() => service?.close());

const withRequestId = (id: string) => ({ headers: { "x-request-id": id } });

describe("the audit log", () => {
  it("records who did what to which key for every admin action, with the request id and never a token", async () => {
    const { team } = await service.teams().createTeam({ name: "audited" }, withRequestId("req-team"));
    const teamId = team?.id ?? "";
    const admin = await service
      .tokens()
      .issue({ teamId, name: "admin", scopes: ["admin"] }, withRequestId("req-issue-admin"));
    const asAdmin = service.tokens(admin.token);
    const worker = await asAdmin.issue(
      { teamId, name: "worker", scopes: ["read"] },
      withRequestId("req-issue"),
    );
    const keyId = worker.key?.id ?? "";
    await asAdmin.update({ keyId, enabled: false }, withRequestId("req-update"));
    const rotated = await asAdmin.rotate({ keyId }, withRequestId("req-rotate"));
    await asAdmin.revoke({ keyId: rotated.key?.id ?? "", reason: "done" }, withRequestId("req-revoke"));

    const { rows } = await service.sql.query(
      "select actor, action, team_id, key_id, request_id, details from audit_log where team_id = $1 order by id",
      [teamId],
    );
    expect(rows.map((r) => [r.actor, r.action, r.key_id, r.request_id])).toEqual([
      ["root", "team.create", null, "req-team"],
      ["root", "key.issue", admin.key?.id, "req-issue-admin"],
      [admin.key?.id, "key.issue", keyId, "req-issue"],
      [admin.key?.id, "key.update", keyId, "req-update"],
      [admin.key?.id, "key.rotate", keyId, "req-rotate"],
      [admin.key?.id, "key.revoke", rotated.key?.id, "req-revoke"],
    ]);
    expect(rows[5]?.details).toEqual({ reason: "done" });
    const dump = JSON.stringify(rows);
    for (const token of [admin.token, worker.token, rotated.token]) {
      expect(dump).not.toContain(token);
      expect(dump).not.toContain(hashToken(token).toString("hex"));
    }
  });

  it("records no change for a failed call; an unauthenticated one only as a refusal", async () => {
    const changes = "select count(*)::int as n from audit_log where action not like 'call.%'";
    const refusals = "select action, details from audit_log where action like 'call.%'";
    const before = await service.sql.query(changes);
    await rpcError(service.tokens(null).issue({ teamId: "team_0000000000000000000000", name: "x" }));
    await rpcError(service.tokens().issue({ teamId: "team_0000000000000000000000", name: "x" }));
    await rpcError(service.teams().createTeam({ name: "" }));
    // The refusal is written within a second (audit/refused-call-recorder.ts); NOT_FOUND and
    // INVALID_ARGUMENT are not refusals and leave nothing.
    const { rows } = await eventually(
      () => service.sql.query(refusals),
      (result) => result.rows.length > 0,
      { what: "the unauthenticated call recorded" },
    );
    expect(rows).toEqual([
      {
        action: "call.unauthenticated",
        details: expect.objectContaining({
          procedure: "latchkey.v1.TokenService/Issue",
          credential: "missing",
        }),
      },
    ]);
    expect((await service.sql.query(changes)).rows[0].n).toBe(before.rows[0].n);
  });
});

describe("the outbox", () => {
  let teamId: string;
  beforeAll(async () => {
    teamId = (await service.teams().createTeam({ name: "outboxed" })).team?.id ?? "";
  });
  const eventsOf = async (keyId: string) =>
    (
      await service.sql.query(
        "select event_type, team_id, token_hash, published_at, stream_sequence from key_event_outbox where key_id = $1 order by id",
        [keyId],
      )
    ).rows;

  it("gets one row per change a cache must hear about, published by the in-process bus", async () => {
    const { key, token } = await service.tokens().issue({ teamId, name: "evented", scopes: ["read"] });
    const keyId = key?.id ?? "";
    expect(await eventsOf(keyId)).toEqual([]);
    await service.tokens().update({ keyId, enabled: false });
    await service.tokens().update({ keyId, enabled: false }); // no change, no event
    await service.tokens().update({ keyId, enabled: true });
    await service.tokens().update({ keyId, scopes: { values: ["write"] } });
    await service.tokens().update({ keyId, name: "renamed" });
    await service.tokens().rotate({ keyId, gracePeriod: { seconds: 60n, nanos: 0 } });
    await service.tokens().revoke({ keyId });
    await service.tokens().revoke({ keyId }); // already revoked, no event
    await service.handle.publisher.drain();

    const rows = await eventsOf(keyId);
    expect(rows.map((r) => r.event_type)).toEqual([
      KeyEventType.DISABLED,
      KeyEventType.ENABLED,
      KeyEventType.SCOPES_CHANGED,
      KeyEventType.METADATA_CHANGED,
      KeyEventType.ROTATED,
      KeyEventType.REVOKED,
    ]);
    for (const row of rows) {
      expect(row.team_id).toBe(teamId);
      expect(Buffer.from(row.token_hash).equals(hashToken(token))).toBe(true);
      expect(row.published_at).not.toBeNull();
    }
    const sequences = rows.map((r) => Number(r.stream_sequence));
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
  });

  it("is written by the transaction that made the change (same xmin), and stays pending while no publisher runs", async () => {
    const { key } = await service.tokens().issue({ teamId, name: "same-transaction" });
    const keyId = key?.id ?? "";
    // Stop publishing so the outbox row keeps the version its transaction wrote.
    await service.handle.publisher.stop();
    await service.tokens().revoke({ keyId, reason: "xmin" });
    const { rows } = await service.sql.query(
      `select k.xmin::text as key_xmin, o.xmin::text as outbox_xmin, a.xmin::text as audit_xmin,
              o.event_type, o.published_at
         from api_keys k
         join key_event_outbox o on o.key_id = k.id
         join audit_log a on a.key_id = k.id and a.action = 'key.revoke'
        where k.id = $1`,
      [keyId],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].event_type).toBe(KeyEventType.REVOKED);
    expect(rows[0].published_at).toBeNull();
    expect(rows[0].outbox_xmin).toBe(rows[0].key_xmin);
    expect(rows[0].audit_xmin).toBe(rows[0].key_xmin);
  });
});
