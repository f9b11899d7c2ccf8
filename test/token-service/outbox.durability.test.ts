// Key events leave through the outbox to JetStream: once each, even when NATS
// is down at commit time, when the publishing replica dies before publishing,
// and when two replicas publish at once.
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { KEY_EVENTS_STREAM, keyEventSubject } from "@latchkey/events";
import { KeyEventSchema, KeyEventType, VerifyResult } from "@latchkey/proto";
import { hashToken } from "@latchkey/token";
import { jetstream, jetstreamManager, type StoredMsg } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabaseUrl, type NatsServer, natsUrl, startNats } from "../harness/index.js";
import { eventually } from "../harness/wait.js";
import { startTestService, type TestService } from "./start.js";

interface OutboxRow {
  id: string;
  key_id: string;
  published_at: Date | null;
  stream_sequence: string | null;
}
const outboxRows = async (sql: pg.Pool, keyIds?: string[]): Promise<OutboxRow[]> =>
  (
    await sql.query<OutboxRow>(
      `select id::text, key_id, published_at, stream_sequence::text from key_event_outbox
        ${keyIds ? "where key_id = any($1)" : ""} order by id`,
      keyIds ? [keyIds] : [],
    )
  ).rows;

/** The stream's message at `seq`; the client answers a missing one with null, a test with an error. */
async function streamMessage(nc: NatsConnection, seq: number): Promise<StoredMsg> {
  const message = await (await jetstreamManager(nc)).streams.getMessage(KEY_EVENTS_STREAM, { seq });
  if (message === null) throw new Error(`the stream holds no message ${seq}`);
  return message;
}

/** Every message in the stream (a private NATS holds only this file's). */
async function allStreamMessages(nc: NatsConnection): Promise<StoredMsg[]> {
  const jsm = await jetstreamManager(nc);
  const { state } = await jsm.streams.info(KEY_EVENTS_STREAM);
  const messages: StoredMsg[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    messages.push(await streamMessage(nc, seq));
  }
  return messages;
}

async function waitForStream(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await eventually(
    () =>
      jsm.streams.info(KEY_EVENTS_STREAM).then(
        () => true,
        () => false,
      ),
    (ok) => ok,
  );
}

async function teamWithKeys(service: TestService, name: string, count: number) {
  const teamId = (await service.teams().createTeam({ name })).team?.id ?? "";
  const keys: Array<{ id: string; token: string }> = [];
  for (let i = 0; i < count; i++) {
    const { key, token } = await service.tokens().issue({ teamId, name: `${name}-${i}` });
    keys.push({ id: key?.id ?? "", token });
  }
  return { teamId, keys };
}

describe("on the run's NATS server", () => {
  let service: TestService;
  let nc: NatsConnection;
  beforeAll(async () => {
    service = await startTestService({ natsUrl: natsUrl() });
    nc = await connect({ servers: natsUrl() });
  });
  afterAll(async () => {
    await service?.close();
    await nc?.close();
  });

  it("publishes a revocation as a KeyEvent on latchkey.keys.<team>.revoked with Nats-Msg-Id outbox-<id>", async () => {
    const { teamId, keys } = await teamWithKeys(service, "nats-revoke", 1);
    const key = keys[0] ?? { id: "", token: "" };
    await service.tokens().revoke({ keyId: key.id });
    const [row] = await eventually(
      () => outboxRows(service.sql, [key.id]),
      (rows) => rows.length === 1 && rows[0]?.published_at !== null,
    );
    const message = await streamMessage(nc, Number(row?.stream_sequence));
    expect(message.subject).toBe(`latchkey.keys.${teamId}.revoked`);
    expect(message.subject).toBe(keyEventSubject(teamId, KeyEventType.REVOKED));
    expect(message.header.get("Nats-Msg-Id")).toBe(`outbox-${row?.id}`);
    const event = fromBinary(KeyEventSchema, message.data);
    expect(event).toMatchObject({
      id: BigInt(row?.id ?? 0),
      type: KeyEventType.REVOKED,
      keyId: key.id,
      teamId,
    });
    expect(Buffer.from(event.tokenHash).equals(hashToken(key.token))).toBe(true);
    expect(event.occurTime).toBeDefined();
  });
});

describe("on a NATS server of its own", () => {
  let nats: NatsServer;
  // A fresh connection per use: a JetStream request made while a connection is
  // still reconnecting after the server restarted can lose its reply.
  const withNats = async <T>(use: (nc: NatsConnection) => Promise<T>): Promise<T> => {
    const nc = await connect({ servers: nats.url });
    try {
      return await use(nc);
    } finally {
      await nc.close();
    }
  };
  beforeAll(async () => {
    nats = await startNats();
  });
  afterAll(async () => {
    await nats?.dispose();
  });

  it("delivers a revocation committed while NATS was down, once, from the next replica, which started during the outage", async () => {
    const databaseUrl = await freshDatabaseUrl("outage");
    const first = await startTestService({ databaseUrl, natsUrl: nats.url });
    let revoked: { id: string; token: string } | undefined;
    let teamId = "";
    try {
      await withNats(waitForStream);
      const made = await teamWithKeys(first, "outage", 1);
      teamId = made.teamId;
      revoked = made.keys[0];
      await nats.stop();
      await first.tokens().revoke({ keyId: revoked?.id ?? "" });
      expect((await outboxRows(first.sql, [revoked?.id ?? ""]))[0]?.published_at).toBeNull();
    } finally {
      // The replica goes away with the event still in its outbox.
      await first.close();
    }
    // The next replica starts while NATS is still down, and serves meanwhile.
    const second = await startTestService({ databaseUrl, natsUrl: nats.url });
    try {
      const answer = await second.tokens(null).verify({ token: revoked?.token ?? "" });
      expect(VerifyResult[answer.result]).toBe("REVOKED");
      await nats.restart();
      const [row] = await eventually(
        () => outboxRows(second.sql, [revoked?.id ?? ""]),
        (rows) => rows[0]?.published_at !== null,
      );
      const messages = (await withNats(allStreamMessages)).filter((m) =>
        m.subject.startsWith(`latchkey.keys.${teamId}.`),
      );
      expect(messages).toHaveLength(1);
      expect(messages[0]?.header.get("Nats-Msg-Id")).toBe(`outbox-${row?.id}`);
      expect(messages[0]?.seq).toBe(Number(row?.stream_sequence));
    } finally {
      await second.close();
    }
  });

  it("does not publish twice when the dying publisher had already sent the event but not marked it", async () => {
    const databaseUrl = await freshDatabaseUrl("dedupe");
    const first = await startTestService({ databaseUrl, natsUrl: nats.url });
    let teamId = "";
    let keyId = "";
    let sentSeq = 0;
    try {
      await withNats(waitForStream);
      const made = await teamWithKeys(first, "dedupe", 1);
      teamId = made.teamId;
      keyId = made.keys[0]?.id ?? "";
      await first.handle.publisher.stop();
      await first.tokens().revoke({ keyId });
      // What the publisher sends, sent by hand: it "crashed" after publishing, before marking the row.
      const [row] = await outboxRows(first.sql, [keyId]);
      const event = {
        id: BigInt(row?.id ?? 0),
        type: KeyEventType.REVOKED,
        keyId,
        teamId,
      };
      const ack = await withNats((nc) =>
        jetstream(nc).publish(
          keyEventSubject(teamId, KeyEventType.REVOKED),
          toBinary(KeyEventSchema, {
            $typeName: "latchkey.v1.KeyEvent",
            tokenHash: new Uint8Array(32),
            ...event,
          }),
          { msgID: `outbox-${row?.id}` },
        ),
      );
      sentSeq = ack.seq;
    } finally {
      await first.close();
    }
    const second = await startTestService({ databaseUrl, natsUrl: nats.url });
    try {
      const [row] = await eventually(
        () => outboxRows(second.sql, [keyId]),
        (rows) => rows[0]?.published_at !== null,
      );
      expect(Number(row?.stream_sequence)).toBe(sentSeq);
      const messages = (await withNats(allStreamMessages)).filter((m) =>
        m.subject.startsWith(`latchkey.keys.${teamId}.`),
      );
      expect(messages.map((m) => m.seq)).toEqual([sentSeq]);
    } finally {
      await second.close();
    }
  });

  it("publishes each of 50 revocations exactly once with two replicas publishing from one database", async () => {
    const databaseUrl = await freshDatabaseUrl("two");
    const a = await startTestService({ databaseUrl, natsUrl: nats.url, settings: { outboxPollMs: 50 } });
    const b = await startTestService({ databaseUrl, natsUrl: nats.url, settings: { outboxPollMs: 50 } });
    try {
      await withNats(waitForStream);
      const before = await withNats(
        async (nc) => (await (await jetstreamManager(nc)).streams.info(KEY_EVENTS_STREAM)).state.last_seq,
      );
      const { teamId, keys } = await teamWithKeys(a, "two-publishers", 50);
      // Alternate replicas, all at once, so both publishers see pending rows together.
      await Promise.all(keys.map((key, i) => (i % 2 === 0 ? a : b).tokens().revoke({ keyId: key.id })));
      const rows = await eventually(
        () =>
          outboxRows(
            a.sql,
            keys.map((k) => k.id),
          ),
        (all) => all.length === 50 && all.every((r) => r.published_at !== null),
      );
      await Promise.all([a.handle.publisher.drain(), b.handle.publisher.drain()]);

      const messages = (await withNats(allStreamMessages)).filter((m) => m.seq > before);
      expect(messages).toHaveLength(50);
      expect(messages.every((m) => m.subject === `latchkey.keys.${teamId}.revoked`)).toBe(true);
      const ids = messages.map((m) => m.header.get("Nats-Msg-Id"));
      expect(new Set(ids).size).toBe(50);
      expect(new Set(ids)).toEqual(new Set(rows.map((r) => `outbox-${r.id}`)));
      const decodedKeys = messages.map((m) => fromBinary(KeyEventSchema, m.data).keyId);
      expect(new Set(decodedKeys)).toEqual(new Set(keys.map((k) => k.id)));
      // Each row points at its own message.
      expect(new Set(rows.map((r) => Number(r.stream_sequence)))).toEqual(
        new Set(messages.map((m) => m.seq)),
      );
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
