import type { Kysely } from "kysely";

/**
 * The W3C `traceparent` of the request that wrote an outbox row (a Revoke, a
 * Rotate, …), when tracing was on and it was sampled: the publisher links its
 * NATS publish span to that trace, so one can follow a revocation from the
 * admin call to the stream although the publish happens later, elsewhere.
 * Null otherwise. Never read for anything but that link.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("key_event_outbox").addColumn("trace_parent", "text").execute();
}

/** Drops the column. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("key_event_outbox").dropColumn("trace_parent").execute();
}
