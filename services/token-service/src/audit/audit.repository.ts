import type { Kysely, Transaction } from "kysely";
import type { Database } from "../db/tables.js";

/** One admin action, recorded in the same transaction as the change it describes. */
export interface AuditEntry {
  /** `root` or the admin key's id. */
  readonly actor: string;
  /** What was done: `key.issue`, `key.revoke`, `team.create`, … */
  readonly action: string;
  readonly teamId?: string | undefined;
  readonly keyId?: string | undefined;
  readonly requestId?: string | undefined;
  /** Non-secret details (never a token or a hash). */
  readonly details?: Record<string, unknown>;
}

/** Appends an entry to the audit log. */
export async function recordAudit(
  db: Kysely<Database> | Transaction<Database>,
  entry: AuditEntry,
): Promise<void> {
  await recordAudits(db, [entry]);
}

/** Appends entries to the audit log in one statement (one per key of an import batch). */
export async function recordAudits(
  db: Kysely<Database> | Transaction<Database>,
  entries: readonly AuditEntry[],
): Promise<void> {
  if (entries.length === 0) return;
  await db
    .insertInto("audit_log")
    .values(
      entries.map((entry) => ({
        actor: entry.actor,
        action: entry.action,
        team_id: entry.teamId ?? null,
        key_id: entry.keyId ?? null,
        request_id: entry.requestId ?? null,
        details: JSON.stringify(entry.details ?? {}),
      })),
    )
    .execute();
}
