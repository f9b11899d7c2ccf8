import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { freshDatabaseUrl, startNats } from "./index.js";

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("provided PostgreSQL", () => {
  it("answers queries", async () => {
    const rows = await query<{ one: number; version: string }>(
      inject("databaseUrl"),
      "select 1 as one, version() as version",
    );
    expect(rows[0]?.one).toBe(1);
    expect(rows[0]?.version).toMatch(/^PostgreSQL \d+/);
  });

  it("hands out fresh databases that start empty and do not share tables", async () => {
    const first = await freshDatabaseUrl();
    const second = await freshDatabaseUrl();
    expect(first).not.toBe(second);

    await query(first, "create table marker (id int)");
    const tables = await query<{ name: string }>(
      second,
      "select table_name as name from information_schema.tables where table_schema = 'public'",
    );
    expect(tables).toEqual([]);
  });
});

describe("provided NATS", () => {
  it("round-trips a message through JetStream", async () => {
    const nc = await connect({ servers: inject("natsUrl") });
    const stream = `HARNESS_${process.pid}_${Date.now()}`;
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      await jsm.consumers.add(stream, { durable_name: "reader", ack_policy: AckPolicy.Explicit });

      const ack = await jetstream(nc).publish(`${stream}.hello`, "ping");
      expect(ack.seq).toBe(1);

      const consumer = await jetstream(nc).consumers.get(stream, "reader");
      const message = await consumer.next({ expires: 5_000 });
      expect(message?.subject).toBe(`${stream}.hello`);
      expect(message?.string()).toBe("ping");
      await message?.ackAck();

      await jsm.streams.delete(stream);
    } finally {
      await nc.close();
    }
  });
});

describe("private NATS", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it("restarts on the same port with its streams and lets a client reconnect", async () => {
    const server = await startNats();
    cleanups.push(server.dispose);
    const nc: NatsConnection = await connect({
      servers: server.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 50,
    });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "OUTAGE", subjects: ["outage.>"] });
    await jetstream(nc).publish("outage.before", "before");

    const events: string[] = [];
    const reconnected = (async () => {
      for await (const status of nc.status()) {
        events.push(status.type);
        if (status.type === "reconnect") return;
      }
    })();

    await server.stop();
    expect(server.running).toBe(false);
    await server.restart();
    expect(server.running).toBe(true);
    await reconnected;
    expect(events).toContain("disconnect");

    const ack = await jetstream(nc).publish("outage.after", "after");
    expect(ack.seq).toBe(2);
    const info = await jsm.streams.info("OUTAGE");
    expect(info.state.messages).toBe(2);
  });
});
