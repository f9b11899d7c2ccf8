// PostgreSQL crashing under a running token-service must not take the process with it. Found by
// `npm run chaos`: pg emits "error" on a client whose connection ends while no query runs on it,
// and pg-pool listens only while a client is idle, so a client checked out between two statements
// of a transaction (the outbox publisher waits on NATS in the middle of one) crashed the replica
// with an unhandled 'error' event; both replicas died in a PostgreSQL restart under load. And the
// LISTEN connection that wakes the outbox publisher at commit was never re-opened after such a
// restart, so every replica published only on its poll (LATCHKEY_OUTBOX_POLL_MS) from then on.
import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "kysely";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type DatabaseHandle, openDatabase } from "../../services/token-service/src/db/database.js";
import { type PostgresServer, startPostgres } from "../harness/index.js";
import { eventually } from "../harness/wait.js";

let postgres: PostgresServer;
let handle: DatabaseHandle;
const errors: Error[] = [];

beforeAll(async () => {
  postgres = await startPostgres();
  handle = await openDatabase({
    databaseUrl: postgres.url,
    dataDir: "unused-with-a-database-url",
    poolMax: 2,
    onPoolError: (error) => errors.push(error),
  });
}, 60_000);

afterAll(async () => {
  await handle?.close();
  await postgres?.stop();
});

it("survives PostgreSQL crashing while a transaction holds a connection between statements, and reconnects", async () => {
  const transaction = handle.db.transaction().execute(async (trx) => {
    await sql`select 1`.execute(trx);
    await postgres.crash();
    // The connection's end arrives here, while no query runs on it.
    await sleep(500);
    await sql`select 1`.execute(trx);
  });
  await expect(transaction).rejects.toThrow();
  expect(errors.map((error) => error.message).join("\n")).toMatch(/terminated|closed|ECONNRESET/i);

  await postgres.start();
  const one = await eventually(
    () =>
      sql<{ one: number }>`select 1 as one`.execute(handle.db).then(
        (result) => result.rows[0]?.one,
        () => undefined,
      ),
    (value) => value === 1,
    { what: "a query after the restart", timeoutMs: 15_000 },
  );
  expect(one).toBe(1);
}, 60_000);

it("LISTENs again after PostgreSQL restarts, and wakes its listener once for what it missed", async () => {
  let wakes = 0;
  const stop = await handle.listen("crash_test_channel", () => {
    wakes += 1;
  });
  try {
    const notify = () => sql`select pg_notify('crash_test_channel', '')`.execute(handle.db);
    await notify();
    await eventually(
      () => wakes,
      (count) => count === 1,
      { what: "the first notification" },
    );

    await postgres.crash();
    await postgres.start();
    // The catch-up wake after the new LISTEN, then real notifications again.
    await eventually(
      () => wakes,
      (count) => count >= 2,
      { what: "the catch-up wake", timeoutMs: 15_000 },
    );
    const before = wakes;
    await eventually(
      async () => {
        await notify().catch(() => undefined);
        return wakes;
      },
      (count) => count > before,
      { what: "a notification after the restart", timeoutMs: 15_000, intervalMs: 200 },
    );
  } finally {
    await stop();
  }
}, 60_000);
