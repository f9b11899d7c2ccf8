// Reading the audit log: ListAuditEvents on the real token-service and PostgreSQL. Paging, the
// filters (team, key, actor, action, time), who may read what, and bad input.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { AuditEvent } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postConnect } from "./raw-calls.js";
import { rpcError } from "./rpc-error.js";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

let service: TestService;
let teamA: { teamId: string; adminKey: string; adminKeyId: string };
let teamB: { teamId: string; adminKey: string; adminKeyId: string };
/** Keys admin A issued, oldest first. */
const issuedByA: string[] = [];
let issuedByRootInB: string;
/** Ids of the rows written with a fixed time in the past (2020, 2021, 2022). */
let dated: string[];

beforeAll(async () => {
  service = await startTestService();
  teamA = await service.teamWithAdmin("audit-a", ["write"]);
  teamB = await service.teamWithAdmin("audit-b");
  for (let i = 0; i < 5; i++) {
    const { key } = await service.tokens(teamA.adminKey).issue({ teamId: teamA.teamId, name: `a-${i}` });
    issuedByA.push(key?.id ?? "");
  }
  await service.tokens(teamA.adminKey).revoke({ keyId: issuedByA[0], reason: "audit test" });
  await service.tokens(teamA.adminKey).update({ keyId: issuedByA[1], name: "renamed" });
  issuedByRootInB = (await service.tokens().issue({ teamId: teamB.teamId, name: "b-0" })).key?.id ?? "";
  // Entries of a known time, for the time filters.
  const { rows } = await service.sql.query<{ id: string }>(
    `insert into audit_log (actor, action, team_id, details, created_at)
     values ('root', 'test.dated', $1, '{}', '2020-06-01T00:00:00Z'),
            ('root', 'test.dated', $1, '{}', '2021-06-01T00:00:00Z'),
            ('root', 'test.dated', $1, '{}', '2022-06-01T00:00:00Z')
     returning id`,
    [teamA.teamId],
  );
  dated = rows.map((row) => String(row.id));
});
afterAll(() => service?.close());

type Filters = Parameters<ReturnType<TestService["audit"]>["listAuditEvents"]>[0];

/** Every page of a listing, and the page sizes. */
async function allEvents(bearer: string, filters: Filters = {}, pageSize = 0) {
  const events: AuditEvent[] = [];
  const sizes: number[] = [];
  let pageToken = "";
  do {
    const page = await service.audit(bearer).listAuditEvents({ ...filters, pageSize, pageToken });
    events.push(...page.events);
    sizes.push(page.events.length);
    pageToken = page.nextPageToken;
  } while (pageToken !== "" && sizes.length < 200);
  return { events, sizes };
}

const describeEvent = (event: AuditEvent) => `${event.action} ${event.keyId}`;

describe("ListAuditEvents", () => {
  it("lists every entry newest first, ids descending, each once, with the root key", async () => {
    const { events } = await allEvents(ROOT_KEY);
    const ids = events.map((event) => BigInt(event.id));
    expect(ids).toEqual([...ids].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0)));
    expect(new Set(ids).size).toBe(ids.length);
    expect(events.map((event) => event.action)).toEqual(
      expect.arrayContaining(["team.create", "key.issue", "key.revoke", "key.update", "test.dated"]),
    );
    const revoke = events.find((event) => event.action === "key.revoke");
    expect(revoke).toMatchObject({ actor: teamA.adminKeyId, teamId: teamA.teamId, keyId: issuedByA[0] });
    expect(revoke?.details).toMatchObject({ reason: "audit test" });
    expect(revoke?.requestId).not.toBe("");
    expect(revoke?.createTime).toBeDefined();
  });

  it("pages through the same entries with any page size, the last page's token empty", async () => {
    const whole = (await allEvents(ROOT_KEY)).events.map((event) => event.id);
    for (const size of [1, 2, 7]) {
      const { events, sizes } = await allEvents(ROOT_KEY, {}, size);
      expect(events.map((event) => event.id)).toEqual(whole);
      expect(sizes.slice(0, -1).every((n) => n === size)).toBe(true);
      expect(sizes.at(-1)).toBeGreaterThan(0);
    }
    const exact = await service.audit().listAuditEvents({ pageSize: whole.length });
    expect(exact.events).toHaveLength(whole.length);
    expect(exact.nextPageToken).toBe("");
  });

  it("filters by team, key and actor, alone and together", async () => {
    const ofB = (await allEvents(ROOT_KEY, { teamId: teamB.teamId })).events;
    expect(ofB.length).toBeGreaterThan(0);
    expect(ofB.every((event) => event.teamId === teamB.teamId)).toBe(true);
    expect(ofB.map((event) => event.keyId)).toContain(issuedByRootInB);

    const ofKey = (await allEvents(ROOT_KEY, { keyId: issuedByA[0] })).events;
    expect(ofKey.map(describeEvent)).toEqual([`key.revoke ${issuedByA[0]}`, `key.issue ${issuedByA[0]}`]);

    const byAdminA = (await allEvents(ROOT_KEY, { actor: teamA.adminKeyId })).events;
    expect(byAdminA.map(describeEvent)).toEqual([
      `key.update ${issuedByA[1]}`,
      `key.revoke ${issuedByA[0]}`,
      ...[...issuedByA].reverse().map((id) => `key.issue ${id}`),
    ]);
    const byRootInA = (await allEvents(ROOT_KEY, { actor: "root", teamId: teamA.teamId })).events;
    expect(byRootInA.every((event) => event.actor === "root" && event.teamId === teamA.teamId)).toBe(true);
    expect(byRootInA.map((event) => event.action)).toEqual(
      expect.arrayContaining(["team.create", "key.issue", "test.dated"]),
    );
    const none = await service.audit().listAuditEvents({ actor: teamA.adminKeyId, teamId: teamB.teamId });
    expect(none.events).toEqual([]);
  });

  it("filters by action: the action itself and the ones under it, nothing that merely starts alike", async () => {
    // Actions that share a prefix without a dot, and one with a LIKE wildcard's character.
    await service.sql.query(
      `insert into audit_log (actor, action, team_id, details)
       values ('root', 'keyring.test', $1, '{}'), ('root', 'key_x.test', $1, '{}'), ('root', 'keyxissue', $1, '{}')`,
      [teamA.teamId],
    );
    const actions = async (action: string) =>
      [
        ...new Set(
          (await allEvents(ROOT_KEY, { teamId: teamA.teamId, action }, 3)).events.map((e) => e.action),
        ),
      ].sort();
    expect(await actions("key.revoke")).toEqual(["key.revoke"]);
    expect(await actions("key")).toEqual(["key.issue", "key.revoke", "key.update"]);
    expect(await actions("key_x")).toEqual(["key_x.test"]);
    expect(await actions("test")).toEqual(["test.dated"]);
    expect(await actions("key.nothing")).toEqual([]);
    const revokes = await allEvents(ROOT_KEY, { action: "key.revoke", keyId: issuedByA[0] });
    expect(revokes.events.map(describeEvent)).toEqual([`key.revoke ${issuedByA[0]}`]);
  });

  it("filters by time: start inclusive, end exclusive", async () => {
    const at = (iso: string) => timestampFromDate(new Date(iso));
    const between = async (start?: string, end?: string) =>
      (
        await allEvents(ROOT_KEY, {
          teamId: teamA.teamId,
          ...(start ? { startTime: at(start) } : {}),
          ...(end ? { endTime: at(end) } : {}),
        })
      ).events.map((event) => event.id);
    expect(await between("2020-06-01T00:00:00Z", "2022-06-01T00:00:00Z")).toEqual([dated[1], dated[0]]);
    expect(await between("2020-06-01T00:00:00.001Z", "2023-01-01T00:00:00Z")).toEqual([dated[2], dated[1]]);
    expect(await between(undefined, "2021-01-01T00:00:00Z")).toEqual([dated[0]]);
    const recent = await between("2023-01-01T00:00:00Z");
    expect(recent).not.toContain(dated[2]);
    expect(recent.length).toBeGreaterThan(5);
  });

  it("shows a team admin its own team's entries only; another team is PERMISSION_DENIED", async () => {
    const own = (await allEvents(teamA.adminKey)).events;
    expect(own.length).toBeGreaterThan(5);
    expect(own.every((event) => event.teamId === teamA.teamId)).toBe(true);
    expect((await allEvents(teamA.adminKey, { teamId: teamA.teamId })).events).toEqual(own);
    // Another team's key as a filter finds nothing of it: the team filter still holds.
    expect((await allEvents(teamA.adminKey, { keyId: issuedByRootInB })).events).toEqual([]);
    const denied = await rpcError(service.audit(teamA.adminKey).listAuditEvents({ teamId: teamB.teamId }));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.rawMessage).not.toContain(teamB.teamId);
  });

  it("refuses a caller without an admin key", async () => {
    expect((await rpcError(service.audit(null).listAuditEvents({}))).code).toBe(Code.Unauthenticated);
    const { token } = await service
      .tokens()
      .issue({ teamId: teamA.teamId, name: "reader", scopes: ["read"] });
    expect((await rpcError(service.audit(token).listAuditEvents({}))).code).toBe(Code.PermissionDenied);
  });

  it.each<[string, Filters, RegExp]>([
    ["a page size over 500", { pageSize: 501 }, /page_size/],
    ["a negative page size", { pageSize: -1 }, /page_size/],
    ["a page token it did not issue", { pageToken: "not-a-token" }, /page_token/],
    [
      "a page token past 2^63",
      { pageToken: Buffer.from("s99999999999999999999").toString("base64url") },
      /page_token/,
    ],
    ["a page token of zero", { pageToken: Buffer.from("s0").toString("base64url") }, /page_token/],
    ["a malformed team id", { teamId: "team_short" }, /team_id/],
    ["a malformed key id", { keyId: "key_../../etc" }, /key_id/],
    ["an actor that is neither root nor a key id", { actor: "admin" }, /actor/],
    ["an actor with SQL in it", { actor: "root' or '1'='1" }, /actor/],
    ["an action with a wildcard", { action: "key.%" }, /action/],
    ["an action with upper case", { action: "Key.Revoke" }, /action/],
    ["an action ending in a dot", { action: "key." }, /action/],
    ["an action over 64 characters", { action: `a${".b".repeat(40)}` }, /action/],
    [
      "an end before the start",
      { startTime: timestampFromDate(new Date(2_000)), endTime: timestampFromDate(new Date(1_000)) },
      /end_time/,
    ],
    ["a start after year 9999", { startTime: { seconds: 253_402_300_800n, nanos: 0 } }, /start_time/],
    ["a negative nanosecond", { endTime: { seconds: 10n, nanos: -1 } }, /end_time/],
  ])("refuses %s with INVALID_ARGUMENT naming the field", async (_name, filters, field) => {
    const error = await rpcError(service.audit().listAuditEvents(filters));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(field);
  });

  it("refuses unknown fields, and answers a Connect GET (the admin key in its header)", async () => {
    const unknown = await postConnect(
      service.connectUrl,
      "latchkey.v1.AuditService/ListAuditEvents",
      JSON.stringify({ teamId: teamA.teamId, secretFilter: true }),
      "application/json",
      { authorization: `Bearer ${ROOT_KEY}` },
    );
    expect(unknown.status).toBe(400);
    const message = encodeURIComponent(JSON.stringify({ keyId: issuedByA[0] }));
    const response = await fetch(
      `${service.connectUrl}/latchkey.v1.AuditService/ListAuditEvents?encoding=json&message=${message}`,
      { headers: { authorization: `Bearer ${ROOT_KEY}` } },
    );
    expect(response.status).toBe(200);
    const body = (await response.json()) as { events: Array<{ action: string }> };
    expect(body.events.map((event) => event.action)).toEqual(["key.revoke", "key.issue"]);
  });
});
