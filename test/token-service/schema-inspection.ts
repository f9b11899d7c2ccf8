// What the migration tests look at: which tables and migrations a database
// has, and where its outbox ids start.
import { type Kysely, sql } from "kysely";
import { migrations } from "../../services/token-service/src/db/migrations/index.js";
import type { Database } from "../../services/token-service/src/db/tables.js";

/** Every migration's name, in order. */
export const ALL_MIGRATIONS = Object.keys(migrations);

/** The tables the migrations create. */
export const TABLES = [
  "api_keys",
  "audit_log",
  "key_event_outbox",
  "keychain_grants",
  "keychain_secrets",
  "keychains",
  "package_versions",
  "packages",
  "rate_limit_counts",
  "root_credential",
  "teams",
  "usage_batches",
  "usage_minutes",
];

/** The application's tables (kysely's own left out), sorted. */
export async function tables(db: Kysely<Database>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select table_name as name from information_schema.tables
     where table_schema = 'public' and table_name not like 'kysely_%' order by 1`.execute(db);
  return rows.map((r) => r.name);
}

/** The migrations recorded as applied, sorted. */
export async function appliedMigrations(db: Kysely<Database>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return rows.map((r) => r.name);
}

/** Inserts an outbox row and returns its id, to see where ids start. */
export async function firstOutboxId(db: Kysely<Database>): Promise<number> {
  const row = await db
    .insertInto("key_event_outbox")
    .values({
      event_type: 1,
      key_id: "k",
      team_id: "t",
      token_hash: new Uint8Array(32),
      expires_at: null,
      published_at: null,
      stream_sequence: null,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return Number(row.id);
}
