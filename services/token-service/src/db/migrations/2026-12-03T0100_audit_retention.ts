import type { Kysely } from "kysely";

/**
 * Indexes for reading the audit log newest first (ListAuditEvents) and for
 * sweeping it: by team, key and actor in id order (ids grow with every entry,
 * so `id desc` is newest first and a page token is one id), and by time for
 * the retention sweep and time-range filters. They replace the initial
 * `(key_id, created_at)` and `(team_id, created_at)` indexes, which no query
 * orders by any more.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("audit_log_key_idx").ifExists().execute();
  await db.schema.dropIndex("audit_log_team_idx").ifExists().execute();
  await db.schema.createIndex("audit_log_team_id_idx").on("audit_log").columns(["team_id", "id"]).execute();
  await db.schema.createIndex("audit_log_key_id_idx").on("audit_log").columns(["key_id", "id"]).execute();
  await db.schema.createIndex("audit_log_actor_id_idx").on("audit_log").columns(["actor", "id"]).execute();
  await db.schema.createIndex("audit_log_created_idx").on("audit_log").column("created_at").execute();
}

/** Restores the initial indexes. */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const name of ["audit_log_created_idx", "audit_log_actor_id_idx", "audit_log_key_id_idx"]) {
    await db.schema.dropIndex(name).execute();
  }
  await db.schema.dropIndex("audit_log_team_id_idx").execute();
  await db.schema
    .createIndex("audit_log_key_idx")
    .on("audit_log")
    .columns(["key_id", "created_at"])
    .execute();
  await db.schema
    .createIndex("audit_log_team_idx")
    .on("audit_log")
    .columns(["team_id", "created_at"])
    .execute();
}
