import { type Kysely, sql } from "kysely";

/**
 * Usage: `usage_minutes`, requests per key, minute and outcome, summed from
 * verifiers' reports; `usage_batches`, the id of every report stored, written
 * in the same transaction as its counts so a redelivered report is recognised
 * and not counted twice.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table usage_minutes (
      key_id text not null,
      minute timestamptz not null,
      outcome smallint not null,
      team_id text not null,
      count bigint not null,
      primary key (key_id, minute, outcome)
    )
  `.execute(db);
  // GetUsage for a team; the primary key serves GetUsage for a key and the 24 h counts.
  await sql`create index usage_minutes_team_idx on usage_minutes (team_id, minute)`.execute(db);
  // The retention sweep.
  await sql`create index usage_minutes_minute_idx on usage_minutes (minute)`.execute(db);
  await sql`
    create table usage_batches (
      id text primary key,
      received_at timestamptz not null default now()
    )
  `.execute(db);
  await sql`create index usage_batches_received_idx on usage_batches (received_at)`.execute(db);
}

/** Drops both tables. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table if exists usage_batches`.execute(db);
  await sql`drop table if exists usage_minutes`.execute(db);
}
