import type { Kysely, Transaction } from "kysely";
import type { ApiKeyRow, Database, NewApiKeyRow, StoredRateLimit } from "../db/tables.js";
import type { UsageLimitColumns } from "../usage/usage-limit.js";

type Db = Kysely<Database> | Transaction<Database>;

/** Inserts a key row. */
export async function insertKey(db: Db, row: NewApiKeyRow): Promise<ApiKeyRow> {
  return db.insertInto("api_keys").values(row).returningAll().executeTakeFirstOrThrow();
}

/** Inserts many key rows in one statement (an import batch). */
export async function insertKeys(db: Db, rows: readonly NewApiKeyRow[]): Promise<ApiKeyRow[]> {
  if (rows.length === 0) return [];
  return db.insertInto("api_keys").values(rows).returningAll().execute();
}

/** The keys, of any team, whose token hash is one of `hashes`: id, team and hash only. */
export async function findKeysByHashes(
  db: Db,
  hashes: readonly Uint8Array[],
): Promise<Pick<ApiKeyRow, "id" | "team_id" | "token_hash" | "external_id" | "import_fingerprint">[]> {
  if (hashes.length === 0) return [];
  return db
    .selectFrom("api_keys")
    .select(["id", "team_id", "token_hash", "external_id", "import_fingerprint"])
    .where("token_hash", "in", hashes)
    .execute();
}

/** The imported keys of `teamId` whose external id is one of `externalIds`. */
export async function findKeysByExternalIds(
  db: Db,
  teamId: string,
  externalIds: readonly string[],
): Promise<Pick<ApiKeyRow, "id" | "external_id" | "import_fingerprint">[]> {
  if (externalIds.length === 0) return [];
  return db
    .selectFrom("api_keys")
    .select(["id", "external_id", "import_fingerprint"])
    .where("team_id", "=", teamId)
    .where("external_id", "in", externalIds)
    .execute();
}

/** Finds a key by the SHA-256 of its token. */
export async function findKeyByHash(db: Db, tokenHash: Uint8Array): Promise<ApiKeyRow | undefined> {
  return db.selectFrom("api_keys").selectAll().where("token_hash", "=", tokenHash).executeTakeFirst();
}

/** Finds a key by id; `forUpdate` locks the row for the rest of the transaction. */
export async function findKeyById(db: Db, id: string, forUpdate = false): Promise<ApiKeyRow | undefined> {
  let query = db.selectFrom("api_keys").selectAll().where("id", "=", id);
  if (forUpdate) query = query.forUpdate();
  return query.executeTakeFirst();
}

/** Position in a newest-first listing of a team's keys. */
export interface KeyCursor {
  readonly createdAt: Date;
  readonly id: string;
}

/** The states List can keep (`KeyStateFilter` on the wire), judged at `now`. */
export type KeyListState = "active" | "disabled" | "expired" | "revoked";

/** What List keeps; each one left out keeps every key. */
export interface KeyListFilter {
  /** Revoked keys too (ignored when `state` is given). */
  readonly includeRevoked: boolean;
  /** A case-insensitive substring of the name, matched literally. */
  readonly nameContains?: string | undefined;
  readonly environment?: string | undefined;
  readonly state?: KeyListState | undefined;
  /** The time states are judged at. */
  readonly now?: Date;
}

/** `text` as a LIKE pattern that matches it literally (`\` is PostgreSQL's default escape). */
function literalLike(text: string): string {
  return text.replace(/[\\%_]/g, (char) => `\\${char}`);
}

/**
 * One page of a team's keys, newest first, filtered; fetches `limit + 1` so the caller knows if more
 * remain. The cursor is a position in the unfiltered order, so the same filters page on with it.
 *
 * @example
 * ```ts
 * const rows = await listKeys(db, { teamId, limit: 50, includeRevoked: false, state: "disabled" });
 * ```
 */
export async function listKeys(
  db: Db,
  options: { teamId: string; limit: number; after?: KeyCursor | undefined } & KeyListFilter,
): Promise<ApiKeyRow[]> {
  let query = db
    .selectFrom("api_keys")
    .selectAll()
    .where("team_id", "=", options.teamId)
    .orderBy("created_at", "desc")
    .orderBy("id", "desc")
    .limit(options.limit + 1);
  const now = options.now ?? new Date();
  const { state } = options;
  if (state === "revoked") query = query.where("revoked_at", "is not", null);
  else if (state !== undefined || !options.includeRevoked) query = query.where("revoked_at", "is", null);
  if (state === "expired") query = query.where("expires_at", "<=", now);
  if (state === "active" || state === "disabled") {
    query = query
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
      .where("enabled", "=", state === "active");
  }
  if (options.environment !== undefined) query = query.where("environment", "=", options.environment);
  if (options.nameContains !== undefined) {
    query = query.where("name", "ilike", `%${literalLike(options.nameContains)}%`);
  }
  const after = options.after;
  if (after) {
    query = query.where((eb) =>
      eb.or([
        eb("created_at", "<", after.createdAt),
        eb.and([eb("created_at", "=", after.createdAt), eb("id", "<", after.id)]),
      ]),
    );
  }
  return query.execute();
}

/** The fields Update and Revoke may change. */
export type KeyChanges = Partial<
  Pick<
    ApiKeyRow,
    | "name"
    | "scopes"
    | "enabled"
    | "disabled_by"
    | "revoked_at"
    | "revoked_reason"
    | "expires_at"
    | "tier"
    | "owner"
  >
> & {
  metadata?: Record<string, string>;
  rate_limits?: StoredRateLimit[];
  /** A usage limit to set, or every column null to remove it (`usage/usage-limit.ts`). */
  usageLimit?: UsageLimitColumns;
};

/** Applies changes to a key and returns the new row. */
export async function updateKey(db: Db, id: string, changes: KeyChanges): Promise<ApiKeyRow> {
  const { metadata, usageLimit, rate_limits, ...rest } = changes;
  return db
    .updateTable("api_keys")
    .set({
      ...rest,
      ...(metadata !== undefined ? { metadata: JSON.stringify(metadata) } : {}),
      ...(usageLimit ?? {}),
      ...(rate_limits !== undefined ? { rate_limits: JSON.stringify(rate_limits) } : {}),
    })
    .where("id", "=", id)
    .returningAll()
    .executeTakeFirstOrThrow();
}
