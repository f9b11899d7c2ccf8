// Named prepared statements on real PostgreSQL (LATCHKEY_DB_PREPARED_STATEMENTS): a query marked
// with `prepared` is parsed once per connection and then reused, inside a transaction too; an
// unmarked one never is; the setting turns it off; the results are those of the unnamed query.
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { recordAudit } from "../../services/token-service/src/audit/audit.repository.js";
import { type DatabaseHandle, openDatabase } from "../../services/token-service/src/db/database.js";
import { migrateToLatest } from "../../services/token-service/src/db/migrate.js";
import { prepared, preparedStatementName } from "../../services/token-service/src/db/prepared-statements.js";
import { freshDatabaseUrl } from "../harness/index.js";

/** The prepared statements of the (single) pooled connection's session. */
async function sessionStatements(handle: DatabaseHandle): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from pg_prepared_statements order by name`.execute(
    handle.db,
  );
  return rows.map((row) => row.name);
}

async function withDatabase(preparedStatements: boolean, run: (handle: DatabaseHandle) => Promise<void>) {
  // One connection, so every query sees the same session's pg_prepared_statements.
  const handle = await openDatabase({
    databaseUrl: await freshDatabaseUrl("prep"),
    dataDir: "unused",
    poolMax: 1,
    preparedStatements,
  });
  try {
    await migrateToLatest(handle.db);
    await run(handle);
  } finally {
    await handle.close();
  }
}

const teamsNamed = (handle: DatabaseHandle, name: string) =>
  handle.db.selectFrom("teams").select(["id", "name"]).where("name", "=", name);

describe("prepared statements", () => {
  it("runs a marked query under its name, reuses it, and returns what the unnamed query returns", async () => {
    await withDatabase(true, async (handle) => {
      await handle.db.insertInto("teams").values({ id: "team_alpha", name: "alpha" }).execute();
      const query = prepared(teamsNamed(handle, "alpha"));
      const name = preparedStatementName(query.sql);
      expect(name).toMatch(/^latchkey_[0-9a-f]{24}$/);
      expect(await sessionStatements(handle)).not.toContain(name);

      const first = (await handle.db.executeQuery(query)).rows;
      const again = (await handle.db.executeQuery(prepared(teamsNamed(handle, "beta")))).rows;
      expect(first.map((row) => row.name)).toEqual(["alpha"]);
      expect(again).toEqual([]);
      expect(first).toEqual(await teamsNamed(handle, "alpha").execute());
      expect((await sessionStatements(handle)).filter((each) => each === name)).toHaveLength(1);
    });
  });

  it("leaves unmarked queries unnamed", async () => {
    await withDatabase(true, async (handle) => {
      await handle.db.selectFrom("teams").select("id").where("name", "like", "x%").execute();
      expect(await sessionStatements(handle)).toEqual([]);
    });
  });

  it("prepares inside a transaction, and the audit write is one such statement", async () => {
    await withDatabase(true, async (handle) => {
      await handle.db.transaction().execute(async (trx) => {
        await recordAudit(trx, { actor: "root", action: "test.one", details: { n: 1 } });
        await recordAudit(trx, { actor: "root", action: "test.two", teamId: undefined });
      });
      const rows = await handle.db
        .selectFrom("audit_log")
        .select(["action", "team_id"])
        .orderBy("id")
        .execute();
      expect(rows).toEqual([
        { action: "test.one", team_id: null },
        { action: "test.two", team_id: null },
      ]);
      expect((await sessionStatements(handle)).filter((each) => each.startsWith("latchkey_"))).toHaveLength(
        1,
      );
    });
  });

  it("names nothing with LATCHKEY_DB_PREPARED_STATEMENTS=false", async () => {
    await withDatabase(false, async (handle) => {
      await handle.db.insertInto("teams").values({ id: "team_alpha", name: "alpha" }).execute();
      const rows = (await handle.db.executeQuery(prepared(teamsNamed(handle, "alpha")))).rows;
      expect(rows.map((row) => row.name)).toEqual(["alpha"]);
      await recordAudit(handle.db, { actor: "root", action: "test.off" });
      expect(await sessionStatements(handle)).toEqual([]);
    });
  });
});
