import { create } from "@bufbuild/protobuf";
import { type VerifyRequest, VerifyRequestSchema, type VerifyResponse, VerifyResult } from "@latchkey/proto";
import { createKeyFormats, generateToken, hashToken } from "@latchkey/token";
import {
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
} from "kysely";
import { describe, expect, it } from "vitest";
import { keyRow } from "../../test-support/key-row.js";
import type { ApiKeyRow, Database } from "../db/tables.js";
import { KeyRowCache } from "../keys/key-row-cache.js";
import type { ServiceDeps } from "./service-deps.js";
import { createVerifyHandler } from "./verify-handler.js";

/**
 * A database holding one key row. Like PostgreSQL, a query sees the row as it
 * is when the query starts; `hold()` delays answers (not what they see) until
 * `release()`, so a test can commit a change while a lookup is on its way.
 */
function createOneRowDatabase(row: ApiKeyRow) {
  let current = row;
  let held: Promise<void> | undefined;
  let release = () => {};
  let queries = 0;
  const connection: DatabaseConnection = {
    async executeQuery<R>() {
      queries += 1;
      const snapshot = { ...current };
      if (held !== undefined) await held;
      return { rows: [snapshot as R] };
    },
    // biome-ignore lint/correctness/useYield: the handler never streams.
    async *streamQuery() {
      throw new Error("not used");
    },
  };
  const driver: Driver = {
    async init() {},
    async acquireConnection() {
      return connection;
    },
    async beginTransaction() {},
    async commitTransaction() {},
    async rollbackTransaction() {},
    async releaseConnection() {},
    async destroy() {},
  };
  const db = new Kysely<Database>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => driver,
      createIntrospector: (k) => new PostgresIntrospector(k),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  });
  return {
    db,
    get queries() {
      return queries;
    },
    revoke() {
      current = { ...current, revoked_at: new Date() };
    },
    hold() {
      held = new Promise((resolve) => (release = resolve));
    },
    release() {
      release();
      held = undefined;
    },
  };
}

function setup() {
  const token = generateToken({ prefix: "lk", environment: "test" });
  const database = createOneRowDatabase(
    keyRow({ environment: "test", token_hash: hashToken(token), created_at: new Date() }),
  );
  const cache = new KeyRowCache({ maxEntries: 10, ttlMs: 60_000 });
  cache.clear(5); // subscribed at stream sequence 5
  // Only what Verify uses; the admin collaborators are never reached.
  const deps = {
    db: database.db,
    formats: createKeyFormats({ formats: [{ name: "latchkey", kind: "latchkey", prefix: "lk" }] }),
    cache,
    lastUsed: { record() {} },
    rowCacheCurrent: () => true,
    verifyCacheMaxStaleMs: 1_000,
  } as unknown as ServiceDeps;
  const handler = createVerifyHandler(deps);
  const verify = async (minEventSequence: bigint): Promise<VerifyResponse> =>
    handler(create(VerifyRequestSchema, { token, minEventSequence }) as VerifyRequest);
  return { database, cache, verify };
}

describe("Verify and min_event_sequence", () => {
  it("answers from the row cache only once it has applied the caller's events", async () => {
    const { database, verify } = setup();
    expect((await verify(0n)).result).toBe(VerifyResult.VALID);
    database.revoke(); // committed; its event (sequence 6) has not reached this replica yet
    // A caller that has not seen event 6 gets the cached row, as before.
    expect((await verify(5n)).result).toBe(VerifyResult.VALID);
    expect(database.queries).toBe(1);
    // One that has applied it gets the database's answer.
    expect((await verify(6n)).result).toBe(VerifyResult.REVOKED);
    expect(database.queries).toBe(2);
  });

  it("does not hand a caller a lookup that started before the events it has applied", async () => {
    const { database, verify } = setup();
    database.hold();
    const early = verify(0n); // reads the row before the revocation commits
    while (database.queries < 1) await new Promise((resolve) => setImmediate(resolve));
    database.revoke();
    const late = verify(6n); // has applied the revocation's event: needs its own lookup
    database.release();
    expect((await early).result).toBe(VerifyResult.VALID);
    expect((await late).result).toBe(VerifyResult.REVOKED);
    expect(database.queries).toBe(2);
  });

  it("shares a lookup among callers it is fresh enough for", async () => {
    const { database, verify } = setup();
    database.revoke();
    database.hold();
    const first = verify(6n);
    const second = verify(6n);
    const third = verify(3n);
    database.release();
    for (const answer of await Promise.all([first, second, third])) {
      expect(answer.result).toBe(VerifyResult.REVOKED);
    }
    expect(database.queries).toBe(1);
  });

  it("caches what a fresher lookup read, for every caller", async () => {
    const { cache, database, verify } = setup();
    expect((await verify(0n)).result).toBe(VerifyResult.VALID);
    database.revoke();
    expect((await verify(6n)).result).toBe(VerifyResult.REVOKED);
    // The replica's cache now holds the newer row, before the event arrives.
    expect(cache.appliedSequence).toBe(5n);
    expect((await verify(0n)).result).toBe(VerifyResult.REVOKED);
    expect(database.queries).toBe(2);
  });
});
