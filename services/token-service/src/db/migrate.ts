import { type Kysely, sql } from "kysely";
import { type MigrationResult, Migrator } from "kysely/migration";
import { migrations } from "./migrations/index.js";
import type { Database } from "./tables.js";

/** What {@link migrateToLatest} did. */
export interface MigrateOutcome {
  readonly applied: readonly string[];
}

// Arbitrary constant shared by every replica: the session-level advisory lock
// that serializes start-up migrations across processes.
const MIGRATION_LOCK_ID = 7_201_314_001;

/**
 * Brings the schema up to date. Holds a PostgreSQL session advisory lock for
 * the whole run, so two replicas starting at once apply each migration once
 * (the second waits, then finds nothing to do).
 *
 * @example
 * ```ts
 * const { applied } = await migrateToLatest(db);
 * ```
 * @throws the migration's error, after logging which migration failed.
 */
export async function migrateToLatest(db: Kysely<Database>): Promise<MigrateOutcome> {
  return db.connection().execute(async (connection) => {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK_ID})`.execute(connection);
    try {
      const migrator = new Migrator({
        db: connection,
        provider: { getMigrations: async () => migrations },
      });
      const { error, results } = await migrator.migrateToLatest();
      const failed = results?.find((r: MigrationResult) => r.status === "Error");
      if (error) {
        const where = failed ? `migration ${failed.migrationName} failed` : "migration failed";
        throw new Error(`${where}: ${error instanceof Error ? error.message : String(error)}`, {
          cause: error,
        });
      }
      return { applied: (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName) };
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`.execute(connection);
    }
  });
}

/**
 * Reverts the latest migration (for tests and operators rolling back).
 *
 * @example
 * ```ts
 * await migrateDown(db);
 * ```
 */
export async function migrateDown(db: Kysely<Database>): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error } = await migrator.migrateDown();
  if (error) throw error instanceof Error ? error : new Error(String(error));
}
