import { KeyEventType } from "@latchkey/proto";
import { traceHeaderRecord } from "@latchkey/telemetry";
import { TraceFlags, trace } from "@opentelemetry/api";
import { type Kysely, sql, type Transaction } from "kysely";
import type { ApiKeyRow, Database } from "../db/tables.js";

/** The channel the outbox publisher LISTENs on; NOTIFY is sent at commit. */
export const OUTBOX_CHANNEL = "latchkey_outbox";

type Db = Kysely<Database> | Transaction<Database>;

/** A pending outbox row, normalized across pg and PGlite. */
export interface OutboxRow {
  readonly id: number;
  readonly eventType: KeyEventType;
  readonly keyId: string;
  readonly teamId: string;
  readonly tokenHash: Uint8Array;
  readonly expiresAt: Date | null;
  readonly createdAt: Date;
  /** The `traceparent` of the request that wrote the row, when it was traced and sampled. */
  readonly traceParent: string | null;
}

/** The outbox row of an event about `key`, not yet published. */
function outboxRow(type: KeyEventType, key: ApiKeyRow) {
  return {
    event_type: type,
    key_id: key.id,
    team_id: key.team_id,
    token_hash: key.token_hash,
    expires_at: key.expires_at,
    published_at: null,
    stream_sequence: null,
    trace_parent: sampledTraceParent(),
  };
}

/** The active span's `traceparent` when it is sampled (tracing on, inside a traced request); null otherwise. */
function sampledTraceParent(): string | null {
  const spanContext = trace.getActiveSpan()?.spanContext();
  if (spanContext === undefined || (spanContext.traceFlags & TraceFlags.SAMPLED) === 0) return null;
  return traceHeaderRecord().traceparent ?? null;
}

/**
 * Records a key event in the outbox. Call inside the transaction that makes
 * the change, so the event exists if and only if the change committed; the
 * NOTIFY is delivered at commit and wakes the publisher.
 *
 * @returns the outbox id, which becomes the event id and Nats-Msg-Id.
 */
export async function enqueueKeyEvent(
  trx: Transaction<Database>,
  type: KeyEventType,
  key: ApiKeyRow,
): Promise<number> {
  const row = await trx
    .insertInto("key_event_outbox")
    .values(outboxRow(type, key))
    .returning("id")
    .executeTakeFirstOrThrow();
  await sql`select pg_notify(${OUTBOX_CHANNEL}, '')`.execute(trx);
  return Number(row.id);
}

/**
 * {@link enqueueKeyEvent} for many keys in one statement and one NOTIFY (an
 * import batch); the same guarantee: the events exist if and only if the
 * change commits.
 */
export async function enqueueKeyEvents(
  trx: Transaction<Database>,
  type: KeyEventType,
  keys: readonly ApiKeyRow[],
): Promise<void> {
  if (keys.length === 0) return;
  await trx
    .insertInto("key_event_outbox")
    .values(keys.map((key) => outboxRow(type, key)))
    .execute();
  await sql`select pg_notify(${OUTBOX_CHANNEL}, '')`.execute(trx);
}

/**
 * Locks up to `limit` unpublished rows, oldest first, skipping rows another
 * publisher holds, so concurrent publishers never send the same row twice.
 */
export async function lockPendingEvents(trx: Transaction<Database>, limit: number): Promise<OutboxRow[]> {
  const rows = await trx
    .selectFrom("key_event_outbox")
    .selectAll()
    .where("published_at", "is", null)
    .orderBy("id")
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
  return rows.map((row) => ({
    id: Number(row.id),
    eventType: row.event_type as KeyEventType,
    keyId: row.key_id,
    teamId: row.team_id,
    tokenHash: row.token_hash,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    traceParent: row.trace_parent ?? null,
  }));
}

/**
 * Marks rows published, each with its stream sequence, in one statement (a
 * publisher's batch: one round trip instead of one per event, which is what
 * an import's thousands of events per second need).
 */
export async function markPublished(
  db: Db,
  published: readonly { readonly id: number; readonly sequence: number }[],
): Promise<void> {
  if (published.length === 0) return;
  const values = sql.join(published.map(({ id, sequence }) => sql`(${id}::bigint, ${sequence}::bigint)`));
  await sql`update key_event_outbox as o set published_at = now(), stream_sequence = v.sequence
    from (values ${values}) as v(id, sequence) where o.id = v.id`.execute(db);
}

/**
 * Rows not yet published and the creation time of the oldest (null when none):
 * one scan of the partial index on pending rows, for the backlog metrics.
 */
export async function pendingBacklog(db: Db): Promise<{ rows: number; oldest: Date | null }> {
  const row = await db
    .selectFrom("key_event_outbox")
    .select((eb) => [eb.fn.countAll().as("n"), eb.fn.min("created_at").as("oldest")])
    .where("published_at", "is", null)
    .executeTakeFirstOrThrow();
  const oldest = row.oldest === null ? null : new Date(row.oldest);
  return { rows: Number(row.n), oldest };
}

/**
 * Ids of up to `limit` unpublished rows, lowest first, IMPORTED events left
 * out (they change no VALID answer; see the `outbox_currency` migration): what
 * the outbox currency check compares between its rounds. One scan of a partial
 * index that holds only these rows.
 */
export async function pendingCurrencyIds(db: Db, limit: number): Promise<number[]> {
  const rows = await db
    .selectFrom("key_event_outbox")
    .select("id")
    .where("published_at", "is", null)
    .where("event_type", "<>", KeyEventType.IMPORTED)
    .orderBy("id")
    .limit(limit)
    .execute();
  return rows.map((row) => Number(row.id));
}
