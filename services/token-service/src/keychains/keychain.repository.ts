import type { Kysely, Transaction } from "kysely";
import type { Database, KeychainRow } from "../db/tables.js";
import type { PageCursor } from "../rpc/page-token.js";

type Db = Kysely<Database> | Transaction<Database>;

/** A keychain with what its key says about it: hint and revocation. */
export interface KeychainView extends KeychainRow {
  readonly hint: string;
  readonly revoked_at: Date | null;
  readonly revoked_reason: string | null;
  /** Stored secrets (0 when the query did not count them). */
  readonly secret_count: number;
}

function keychainQuery(db: Db) {
  return db
    .selectFrom("keychains as c")
    .innerJoin("api_keys as k", "k.id", "c.key_id")
    .select([
      "c.id",
      "c.team_id",
      "c.name",
      "c.key_id",
      "c.master_key_id",
      "c.wrapped_data_key",
      "c.created_at",
      "c.created_by",
      "k.hint",
      "k.revoked_at",
      "k.revoked_reason",
    ])
    .select((eb) =>
      eb
        .selectFrom("keychain_secrets as s")
        .whereRef("s.keychain_id", "=", "c.id")
        .select(eb.fn.countAll<string | number>().as("n"))
        .as("secret_count"),
    );
}

function view(
  row: Omit<KeychainView, "secret_count"> & { secret_count: string | number | null },
): KeychainView {
  return { ...row, secret_count: Number(row.secret_count ?? 0) };
}

/** Inserts a keychain row (its key row first: `key_id` references it). */
export async function insertKeychain(db: Db, row: Omit<KeychainRow, "created_at">): Promise<void> {
  await db.insertInto("keychains").values(row).execute();
}

/** A keychain by id, or undefined; `forUpdate` locks the keychain row for the transaction. */
export async function findKeychain(db: Db, id: string, forUpdate = false): Promise<KeychainView | undefined> {
  let query = keychainQuery(db).where("c.id", "=", id);
  if (forUpdate) query = query.forUpdate("c");
  const row = await query.executeTakeFirst();
  return row === undefined ? undefined : view(row);
}

/** One page of a team's keychains, newest first; fetches `limit + 1`. */
export async function listKeychains(
  db: Db,
  options: { teamId: string; limit: number; after?: PageCursor | undefined; includeRevoked: boolean },
): Promise<KeychainView[]> {
  let query = keychainQuery(db)
    .where("c.team_id", "=", options.teamId)
    .orderBy("c.created_at", "desc")
    .orderBy("c.id", "desc")
    .limit(options.limit + 1);
  if (!options.includeRevoked) query = query.where("k.revoked_at", "is", null);
  const after = options.after;
  if (after) {
    query = query.where((eb) =>
      eb.or([
        eb("c.created_at", "<", after.createdAt),
        eb.and([eb("c.created_at", "=", after.createdAt), eb("c.id", "<", after.id)]),
      ]),
    );
  }
  return (await query.execute()).map(view);
}

/** Replaces a keychain's wrapped data key (the re-wrap command). */
export async function rewrapKeychain(
  db: Db,
  id: string,
  wrapping: { master_key_id: string; wrapped_data_key: Uint8Array },
): Promise<void> {
  await db.updateTable("keychains").set(wrapping).where("id", "=", id).execute();
}

/** A stored secret without its value. */
export interface SecretInfoRow {
  readonly name: string;
  readonly created_at: Date;
  readonly updated_at: Date;
  readonly updated_by: string;
}

/** Stores a secret's ciphertext, replacing any of that name; says whether one was replaced. */
export async function upsertSecret(
  db: Db,
  row: { keychain_id: string; name: string; ciphertext: Uint8Array; updated_by: string },
): Promise<{ secret: SecretInfoRow; replaced: boolean }> {
  const now = new Date();
  const stored = await db
    .insertInto("keychain_secrets")
    .values({ ...row, created_at: now, updated_at: now })
    .onConflict((oc) =>
      oc.columns(["keychain_id", "name"]).doUpdateSet({
        ciphertext: row.ciphertext,
        updated_at: now,
        updated_by: row.updated_by,
      }),
    )
    .returning(["name", "created_at", "updated_at", "updated_by"])
    .executeTakeFirstOrThrow();
  return { secret: stored, replaced: stored.created_at.getTime() !== now.getTime() };
}

/** The names (and times) of a keychain's secrets, by name. */
export async function listSecrets(db: Db, keychainId: string): Promise<SecretInfoRow[]> {
  return db
    .selectFrom("keychain_secrets")
    .select(["name", "created_at", "updated_at", "updated_by"])
    .where("keychain_id", "=", keychainId)
    .orderBy("name")
    .execute();
}

/** Deletes one secret; false when there was none of that name. */
export async function deleteSecret(db: Db, keychainId: string, name: string): Promise<boolean> {
  const result = await db
    .deleteFrom("keychain_secrets")
    .where("keychain_id", "=", keychainId)
    .where("name", "=", name)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** Deletes every secret of a keychain (it was revoked); returns how many. */
export async function deleteAllSecrets(db: Db, keychainId: string): Promise<number> {
  const result = await db
    .deleteFrom("keychain_secrets")
    .where("keychain_id", "=", keychainId)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * Up to `limit` keychains after id `after` (in id order) whose data key is
 * wrapped by another master key than `activeId`, locked; rows another re-wrap
 * holds are skipped.
 */
export async function lockKeychainsToRewrap(
  trx: Transaction<Database>,
  activeId: string,
  after: string,
  limit: number,
): Promise<Pick<KeychainRow, "id" | "team_id" | "master_key_id" | "wrapped_data_key">[]> {
  return trx
    .selectFrom("keychains")
    .select(["id", "team_id", "master_key_id", "wrapped_data_key"])
    .where("master_key_id", "<>", activeId)
    .where("id", ">", after)
    .orderBy("id")
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
}
