import { type Kysely, sql } from "kysely";

/**
 * `disabled_by`: the actor (`root` or an admin key id) that disabled a key,
 * null while it is enabled, so a key the root key disabled can be re-enabled
 * by the root key only.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("api_keys").addColumn("disabled_by", "text").execute();
  // Who disabled the keys already disabled was not recorded; count it as root,
  // so no team admin can undo a disable it may not have made (root still can).
  await sql`update api_keys set disabled_by = 'root' where not enabled`.execute(db);
}

/** Drops the column. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("api_keys").dropColumn("disabled_by").execute();
}
