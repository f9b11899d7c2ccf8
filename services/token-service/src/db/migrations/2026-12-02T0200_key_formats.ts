import type { Kysely } from "kysely";

/**
 * Named key formats (issue 11): each key row says which format its token has
 * (`latchkey` for every key made before), and a signed key which signing key
 * signed it, so a key signed by a key past its end is refused on a row-cache
 * hit too. A team may name the format its keys are issued in.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("api_keys")
    .addColumn("format", "text", (column) => column.notNull().defaultTo("latchkey"))
    .addColumn("signing_kid", "text")
    .execute();
  await db.schema.alterTable("teams").addColumn("key_format", "text").execute();
}

/** Drops the columns. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("teams").dropColumn("key_format").execute();
  await db.schema.alterTable("api_keys").dropColumn("signing_kid").dropColumn("format").execute();
}
