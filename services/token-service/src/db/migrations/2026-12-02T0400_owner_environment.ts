import { type Kysely, sql } from "kysely";

/**
 * A key's owner (an external id: a user, an agent; null for none), and free-form
 * environment labels (`prod`, `staging`, `dev`) beside `live`/`test`: the
 * initial check allowed only those two. The new check is the label pattern of
 * `@latchkey/token` (`ENVIRONMENT_PATTERN`), so the database refuses what the
 * API would.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("api_keys").addColumn("owner", "text").execute();
  await sql`alter table api_keys drop constraint if exists api_keys_environment_check`.execute(db);
  await sql`alter table api_keys add constraint api_keys_environment_label check (environment ~ '^[a-z][a-z0-9_-]{0,31}$')`.execute(
    db,
  );
}

/** Drops the owner and restores the `live`/`test` check (fails while other labels are stored). */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table api_keys drop constraint api_keys_environment_label`.execute(db);
  await sql`alter table api_keys add constraint api_keys_environment_check check (environment in ('live', 'test'))`.execute(
    db,
  );
  await db.schema.alterTable("api_keys").dropColumn("owner").execute();
}
