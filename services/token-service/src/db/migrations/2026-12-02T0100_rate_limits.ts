import { type Kysely, sql } from "kysely";

/**
 * A key's own rate limits and its trust tier, and the counts of Verify calls
 * that ask to be counted: one row per key, limit and fixed window, so replicas
 * count exactly with one upsert (a sliding-window counter over two windows).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("api_keys")
    .addColumn("rate_limits", "jsonb", (column) => column.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn("tier", "text")
    .execute();
  await db.schema
    .createTable("rate_limit_counts")
    .addColumn("key_id", "text", (column) => column.notNull().references("api_keys.id").onDelete("cascade"))
    .addColumn("name", "text", (column) => column.notNull())
    .addColumn("window_index", "bigint", (column) => column.notNull())
    .addColumn("count", "integer", (column) => column.notNull())
    .addPrimaryKeyConstraint("rate_limit_counts_pk", ["key_id", "name", "window_index"])
    .execute();
}

/** Drops the table and the columns. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("rate_limit_counts").execute();
  await db.schema.alterTable("api_keys").dropColumn("tier").dropColumn("rate_limits").execute();
}
