import type { Kysely, Selectable, Transaction } from "kysely";
import { prepared } from "../db/prepared-statements.js";
import type { AuditLogTable, Database } from "../db/tables.js";

type Db = Kysely<Database> | Transaction<Database>;

/** One admin action, recorded in the same transaction as the change it describes. */
export interface AuditEntry {
  /** `root`, the admin key's id, or `anonymous` (a refused call whose key is unknown). */
  readonly actor: string;
  /** What was done: `key.issue`, `key.revoke`, `team.create`, `call.unauthenticated`, … */
  readonly action: string;
  readonly teamId?: string | undefined;
  readonly keyId?: string | undefined;
  readonly requestId?: string | undefined;
  /** Non-secret details (never a token or a hash). */
  readonly details?: Record<string, unknown>;
}

/** An audit-log row as read; `id` normalized to a decimal string (pg and PGlite differ). */
export type AuditRow = Omit<Selectable<AuditLogTable>, "id"> & { readonly id: string };

/** Appends an entry to the audit log. */
export async function recordAudit(db: Db, entry: AuditEntry): Promise<void> {
  // One row: a fixed text, so a prepared statement (every audited call pays for it).
  await db.executeQuery(prepared(insertAudits(db, [entry])));
}

/** Appends entries to the audit log in one statement (one per key of an import batch). */
export async function recordAudits(db: Db, entries: readonly AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await insertAudits(db, entries).execute();
}

function insertAudits(db: Db, entries: readonly AuditEntry[]) {
  return db.insertInto("audit_log").values(
    entries.map((entry) => ({
      actor: entry.actor,
      action: entry.action,
      team_id: entry.teamId ?? null,
      key_id: entry.keyId ?? null,
      request_id: entry.requestId ?? null,
      details: JSON.stringify(entry.details ?? {}),
    })),
  );
}

/** What {@link listAuditEntries} selects; every field optional but `limit`. */
export interface AuditQuery {
  /** Only this team's entries; undefined for every team (entries without a team included). */
  readonly teamId?: string | undefined;
  readonly keyId?: string | undefined;
  readonly actor?: string | undefined;
  /** This action or one under it (`key` → `key.issue`, `key.revoke`, …). */
  readonly action?: string | undefined;
  /** Written at or after. */
  readonly start?: Date | undefined;
  /** Written before. */
  readonly end?: Date | undefined;
  /** Only entries older than this id (the page token's cursor). */
  readonly beforeId?: bigint | undefined;
  readonly limit: number;
}

/**
 * One page of the audit log, newest first (by id: ids grow with every entry),
 * with `limit + 1` rows so the caller knows whether more follow.
 *
 * @example
 * ```ts
 * const rows = await listAuditEntries(db, { teamId, limit: 100 });
 * ```
 */
export async function listAuditEntries(db: Db, query: AuditQuery): Promise<AuditRow[]> {
  let select = db
    .selectFrom("audit_log")
    .selectAll()
    .orderBy("id", "desc")
    .limit(query.limit + 1);
  if (query.teamId !== undefined) select = select.where("team_id", "=", query.teamId);
  if (query.keyId !== undefined) select = select.where("key_id", "=", query.keyId);
  if (query.actor !== undefined) select = select.where("actor", "=", query.actor);
  const action = query.action;
  if (action !== undefined) {
    // `_` is a LIKE wildcard and may appear in an action (`call.permission_denied`): escape it.
    const under = `${action.replace(/[\\%_]/g, (char) => `\\${char}`)}.%`;
    select = select.where((eb) => eb.or([eb("action", "=", action), eb("action", "like", under)]));
  }
  if (query.start !== undefined) select = select.where("created_at", ">=", query.start);
  if (query.end !== undefined) select = select.where("created_at", "<", query.end);
  // A bigint column compared with a decimal string: both pg and PGlite take it as bigint.
  if (query.beforeId !== undefined) select = select.where("id", "<", query.beforeId.toString());
  const rows = await select.execute();
  return rows.map((row) => ({ ...row, id: String(row.id) }));
}

/**
 * Deletes at most `batchSize` entries written before `before`, oldest first,
 * skipping rows another replica's sweep holds; returns how many it deleted.
 * Small batches keep each statement's locks and WAL short on a large table.
 *
 * @example
 * ```ts
 * while ((await sweepAuditBatch(db, { before, batchSize: 1000 })) === 1000) {}
 * ```
 */
export async function sweepAuditBatch(db: Db, options: { before: Date; batchSize: number }): Promise<number> {
  const result = await db
    .deleteFrom("audit_log")
    .where("id", "in", (eb) =>
      eb
        .selectFrom("audit_log")
        .select("id")
        .where("created_at", "<", options.before)
        .orderBy("created_at")
        .limit(options.batchSize)
        .forUpdate()
        .skipLocked(),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
