// The migrations on embedded PGlite in memory. PGlite takes seconds to
// create a database, so each PGlite test has a file of its own and the two
// run in parallel. (On disk: embedded-pglite.test.ts.)
import { describe, expect, it } from "vitest";
import { openDatabase } from "../../services/token-service/src/db/database.js";
import { migrateDown, migrateToLatest } from "../../services/token-service/src/db/migrate.js";
import {
  ALL_MIGRATIONS as ALL,
  appliedMigrations,
  firstOutboxId,
  TABLES,
  tables,
} from "./schema-inspection.js";

describe("on PGlite", () => {
  it("migrates an in-memory database twice", async () => {
    const handle = await openDatabase({ dataDir: "memory://", poolMax: 1 });
    try {
      expect(handle.kind).toBe("pglite");
      expect((await migrateToLatest(handle.db)).applied).toEqual(ALL);
      expect((await migrateToLatest(handle.db)).applied).toEqual([]);
      expect(await tables(handle.db)).toEqual(TABLES);
      const id = await firstOutboxId(handle.db);
      expect(id).toBeGreaterThanOrEqual(2 ** 40);
      for (let left = ALL.length - 1; left >= 0; left--) {
        await migrateDown(handle.db);
        expect(await appliedMigrations(handle.db)).toEqual(ALL.slice(0, left));
      }
      expect(await tables(handle.db)).toEqual([]);
    } finally {
      await handle.close();
    }
  }, 120_000); // PGlite is CPU-bound: a whole migration cycle takes over 30 s on a busy 2-core machine
});
