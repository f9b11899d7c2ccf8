import { type Kysely, sql } from "kysely";

/**
 * The outbox currency check (`outbox/outbox-currency.ts`) reads the ids of
 * unpublished rows several times a second, IMPORTED events (type 9) left out:
 * they change no VALID answer, and an import can leave a million of them
 * waiting, which the check must not walk past. This partial index holds only
 * the rows the check reads, so it stays a few entries long while the outbox is
 * drained.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index key_event_outbox_pending_currency_idx on key_event_outbox (id)
    where published_at is null and event_type <> 9`.execute(db);
}

/** Drops the index. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists key_event_outbox_pending_currency_idx`.execute(db);
}
