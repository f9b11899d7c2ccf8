// The migrations on real PostgreSQL: idempotent, safe when two replicas start
// at once, and reversible. (PGlite: migrations.pglite.test.ts.)
import { type Kysely, sql } from "kysely";
import { describe, expect, it } from "vitest";
import { openDatabase } from "../../services/token-service/src/db/database.js";
import { migrateDown, migrateToLatest } from "../../services/token-service/src/db/migrate.js";
import type { Database } from "../../services/token-service/src/db/tables.js";
import { freshDatabaseUrl } from "../harness/index.js";
import {
  ALL_MIGRATIONS as ALL,
  appliedMigrations as appliedNames,
  firstOutboxId,
  TABLES,
  tables,
} from "./schema-inspection.js";

describe("on PostgreSQL", () => {
  it("applies every migration once, then nothing, and starts outbox ids at a random point below 2^53", async () => {
    const handle = await openDatabase({
      databaseUrl: await freshDatabaseUrl("mig"),
      dataDir: "unused",
      poolMax: 2,
    });
    try {
      expect((await migrateToLatest(handle.db)).applied).toEqual(ALL);
      expect((await migrateToLatest(handle.db)).applied).toEqual([]);
      expect(await tables(handle.db)).toEqual(TABLES);
      const id = await firstOutboxId(handle.db);
      expect(id).toBeGreaterThanOrEqual(2 ** 40);
      expect(Number.isSafeInteger(id)).toBe(true);
    } finally {
      await handle.close();
    }
  });

  it("lets two replicas migrate one fresh database at once: both succeed, each migration applied once", async () => {
    const databaseUrl = await freshDatabaseUrl("mig2");
    const replicas = await Promise.all(
      [1, 2, 3].map(() => openDatabase({ databaseUrl, dataDir: "unused", poolMax: 2 })),
    );
    try {
      const outcomes = await Promise.all(replicas.map((r) => migrateToLatest(r.db)));
      expect(outcomes.flatMap((o) => o.applied).sort()).toEqual(ALL);
      expect(await appliedNames(replicas[0]?.db as Kysely<Database>)).toEqual(ALL);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });

  it("migrates down step by step to an empty schema and up again", async () => {
    const handle = await openDatabase({
      databaseUrl: await freshDatabaseUrl("down"),
      dataDir: "unused",
      poolMax: 2,
    });
    try {
      await migrateToLatest(handle.db);
      for (let left = ALL.length - 1; left >= 0; left--) {
        await migrateDown(handle.db);
        expect(await appliedNames(handle.db)).toEqual(ALL.slice(0, left));
      }
      expect(await tables(handle.db)).toEqual([]);
      expect((await migrateToLatest(handle.db)).applied).toEqual(ALL);
      expect(await tables(handle.db)).toEqual(TABLES);
    } finally {
      await handle.close();
    }
  });

  it("counts keys already disabled when disabled_by arrives as disabled by root, and enabled ones as not disabled", async () => {
    const handle = await openDatabase({
      databaseUrl: await freshDatabaseUrl("disabledby"),
      dataDir: "unused",
      poolMax: 2,
    });
    try {
      await migrateToLatest(handle.db);
      // Down to just before disabled_by, however many migrations came after it.
      while ((await appliedNames(handle.db)).includes("2026-11-28T0000_disabled_by"))
        await migrateDown(handle.db);
      expect((await appliedNames(handle.db)).at(-1)).toBe("2026-11-27T0100_expiry_announced");
      await sql`insert into teams (id, name) values ('team_m', 'm')`.execute(handle.db);
      await sql`
        insert into api_keys (id, team_id, name, environment, token_hash, hint, created_by, enabled)
        values ('key_on', 'team_m', 'on', 'live', '\\x01', 'h', 'root', true),
               ('key_off', 'team_m', 'off', 'live', '\\x02', 'h', 'key_admin', false)`.execute(handle.db);
      await migrateToLatest(handle.db);
      const { rows } = await sql<{ id: string; disabled_by: string | null }>`
        select id, disabled_by from api_keys order by id`.execute(handle.db);
      expect(rows).toEqual([
        { id: "key_off", disabled_by: "root" },
        { id: "key_on", disabled_by: null },
      ]);
      // Keys from before 2026-12-02T0100_rate_limits have no limits of their own and no tier.
      const limits = await sql<{ rate_limits: unknown; tier: string | null }>`
        select rate_limits, tier from api_keys order by id`.execute(handle.db);
      expect(limits.rows).toEqual([
        { rate_limits: [], tier: null },
        { rate_limits: [], tier: null },
      ]);
    } finally {
      await handle.close();
    }
  });
});
