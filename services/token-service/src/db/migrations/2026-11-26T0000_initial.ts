import { type Kysely, sql } from "kysely";

/** Teams, keys, the key-event outbox, the audit log and the root credential. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("teams")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable("api_keys")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("team_id", "text", (c) => c.notNull().references("teams.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("scopes", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn("environment", "text", (c) => c.notNull().check(sql`environment in ('live', 'test')`))
    .addColumn("token_hash", "bytea", (c) => c.notNull().unique())
    .addColumn("hint", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("expires_at", "timestamptz")
    .addColumn("enabled", "boolean", (c) => c.notNull().defaultTo(true))
    .addColumn("revoked_at", "timestamptz")
    .addColumn("revoked_reason", "text")
    .addColumn("last_used_at", "timestamptz")
    .addColumn("metadata", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("rotated_from", "text", (c) => c.references("api_keys.id"))
    .execute();
  await db.schema
    .createIndex("api_keys_team_created_idx")
    .on("api_keys")
    .columns(["team_id", "created_at", "id"])
    .execute();

  await db.schema
    .createTable("key_event_outbox")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("event_type", "integer", (c) => c.notNull())
    .addColumn("key_id", "text", (c) => c.notNull())
    .addColumn("team_id", "text", (c) => c.notNull())
    .addColumn("token_hash", "bytea", (c) => c.notNull())
    .addColumn("expires_at", "timestamptz")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("published_at", "timestamptz")
    .addColumn("stream_sequence", "bigint")
    .execute();
  await sql`create index key_event_outbox_pending_idx on key_event_outbox (id) where published_at is null`.execute(
    db,
  );

  await db.schema
    .createTable("audit_log")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("team_id", "text")
    .addColumn("key_id", "text")
    .addColumn("request_id", "text")
    .addColumn("details", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
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

  await db.schema
    .createTable("root_credential")
    .addColumn("id", "integer", (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn("token_hash", "bytea", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

/** Drops everything `up` created. */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["root_credential", "audit_log", "key_event_outbox", "api_keys", "teams"]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
