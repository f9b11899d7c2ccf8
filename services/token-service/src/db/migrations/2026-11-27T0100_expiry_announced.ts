import { type Kysely, sql } from "kysely";

/**
 * `expiry_announced`: set once an EXPIRED key event has been written for a key,
 * so the expiry sweeper announces each expiry once across all replicas.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("api_keys")
    .addColumn("expiry_announced", "boolean", (c) => c.notNull().defaultTo(false))
    .execute();
  // Keys already expired when this runs are not announced again.
  await sql`update api_keys set expiry_announced = true where expires_at <= now()`.execute(db);
  await sql`
    create index api_keys_expiry_pending_idx on api_keys (expires_at)
    where expires_at is not null and not expiry_announced and revoked_at is null
  `.execute(db);
}

/** Drops the column and its index. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("api_keys_expiry_pending_idx").ifExists().execute();
  await db.schema.alterTable("api_keys").dropColumn("expiry_announced").execute();
}
