import { type Kysely, sql } from "kysely";

// The outbox id is the event's Nats-Msg-Id, and JetStream drops a message whose
// id it has seen within the duplicate window. Every database counting from 1
// would make a fresh or re-created database (a reset dev folder, a new test
// database on a shared NATS) reuse ids another one published minutes ago, and
// its first revocations would be silently dropped as duplicates. Starting each
// database's ids at a random point in [2^40, 2^50) keeps them apart, and stays
// below 2^53 so ids remain exact JavaScript numbers.

/** Moves the outbox id sequence to a random start, past any id already used. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    select setval(
      pg_get_serial_sequence('key_event_outbox', 'id'),
      greatest(
        (select coalesce(max(id), 0) from key_event_outbox),
        (2 ^ 40 + floor(random() * (2 ^ 50 - 2 ^ 40)))::bigint
      )
    )
  `.execute(db);
}

/** Nothing to undo: ids issued from the random start stay valid. */
export async function down(_db: Kysely<unknown>): Promise<void> {}
