import { type Kysely, sql } from "kysely";

/**
 * Imported keys (ImportKeys): the key's id in the system it came from, unique
 * per team (so a re-run of an import is a no-op), a fingerprint of what was
 * imported under it (so a re-run with different content is told apart), when
 * it was imported (its format goes in `format`, from the key-formats migration).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("api_keys")
    .addColumn("external_id", "text")
    .addColumn("import_fingerprint", "bytea")
    .addColumn("imported_at", "timestamptz")
    .execute();
  // Partial: keys issued here have no external id.
  await sql`create unique index api_keys_team_external_id_idx on api_keys (team_id, external_id) where external_id is not null`.execute(
    db,
  );
}

/** Drops the index and the columns. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists api_keys_team_external_id_idx`.execute(db);
  await db.schema
    .alterTable("api_keys")
    .dropColumn("imported_at")
    .dropColumn("import_fingerprint")
    .dropColumn("external_id")
    .execute();
}
