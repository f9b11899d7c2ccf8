import { type Kysely, sql } from "kysely";

/**
 * Usage: `usage_minutes`, requests per key, minute and outcome, summed from
 * verifiers' reports; `usage_batches`, the id of every report stored, written
 * in the same transaction as its counts so a redelivered report is recognised
 * and not counted twice. Usage-limited keys: `api_keys.remaining` (null: no
 * limit), refilled to `refill_amount` at the start of each UTC `refill_interval`
 * (`day` or `month`; null: never) after `refilled_at`.
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
  await sql`
    alter table api_keys
      add column remaining bigint check (remaining >= 0),
      add column refill_interval text check (refill_interval in ('day', 'month')),
      add column refill_amount bigint check (refill_amount > 0),
      add column refilled_at timestamptz
  `.execute(db);
}

/** Drops both tables and the usage-limit columns. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table api_keys
      drop column if exists remaining,
      drop column if exists refill_interval,
      drop column if exists refill_amount,
      drop column if exists refilled_at
  `.execute(db);
  await sql`drop table if exists usage_batches`.execute(db);
  await sql`drop table if exists usage_minutes`.execute(db);
}
