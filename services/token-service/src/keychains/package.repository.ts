import type { Kysely, Transaction } from "kysely";
import type { Database, KeychainGrantRow, PackageVersionRow, StoredRequiredSecret } from "../db/tables.js";

type Db = Kysely<Database> | Transaction<Database>;

/** The team that owns a package name, or undefined when it was never registered; locks it when asked. */
export async function findPackageOwner(db: Db, name: string, forUpdate = false): Promise<string | undefined> {
  let query = db.selectFrom("packages").select("team_id").where("name", "=", name);
  if (forUpdate) query = query.forUpdate();
  return (await query.executeTakeFirst())?.team_id;
}

/** Claims a package name for a team; false when another registration claimed it first. */
export async function claimPackage(db: Db, name: string, teamId: string): Promise<boolean> {
  const inserted = await db
    .insertInto("packages")
    .values({ name, team_id: teamId, created_at: new Date() })
    .onConflict((oc) => oc.column("name").doNothing())
    .returning("name")
    .executeTakeFirst();
  return inserted !== undefined;
}

/** A package version with its owner's team. */
export type PackageVersionView = PackageVersionRow & { readonly team_id: string };

/** A registered version, or undefined. */
export async function findPackageVersion(
  db: Db,
  name: string,
  version: string,
): Promise<PackageVersionView | undefined> {
  return db
    .selectFrom("package_versions as v")
    .innerJoin("packages as p", "p.name", "v.package_name")
    .selectAll("v")
    .select("p.team_id")
    .where("v.package_name", "=", name)
    .where("v.version", "=", version)
    .executeTakeFirst();
}

/** Inserts a new version; undefined when it exists already (another registration won the race). */
export async function insertPackageVersion(
  db: Db,
  row: {
    package_name: string;
    version: string;
    public: boolean;
    sha256: Uint8Array;
    required: readonly StoredRequiredSecret[];
    registered_by: string;
  },
): Promise<PackageVersionRow | undefined> {
  return db
    .insertInto("package_versions")
    .values({ ...row, required: JSON.stringify(row.required), registered_at: new Date() })
    .onConflict((oc) => oc.columns(["package_name", "version"]).doNothing())
    .returningAll()
    .executeTakeFirst();
}

/** Changes whether a version is public (the only thing about a version that may change). */
export async function setPackageVersionPublic(
  db: Db,
  name: string,
  version: string,
  isPublic: boolean,
): Promise<PackageVersionRow> {
  return db
    .updateTable("package_versions")
    .set({ public: isPublic })
    .where("package_name", "=", name)
    .where("version", "=", version)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Sets a keychain's grant for a package, replacing the one it had. */
export async function upsertGrant(
  db: Db,
  row: Omit<KeychainGrantRow, "updated_at">,
): Promise<KeychainGrantRow> {
  const now = new Date();
  return db
    .insertInto("keychain_grants")
    .values({ ...row, updated_at: now })
    .onConflict((oc) =>
      oc.columns(["keychain_id", "package_name"]).doUpdateSet({
        version: row.version,
        sha256: row.sha256,
        names: row.names,
        updated_at: now,
        granted_by: row.granted_by,
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Removes a keychain's grant for a package; false when it had none. */
export async function deleteGrant(db: Db, keychainId: string, packageName: string): Promise<boolean> {
  const result = await db
    .deleteFrom("keychain_grants")
    .where("keychain_id", "=", keychainId)
    .where("package_name", "=", packageName)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** A keychain's grants, by package name. */
export async function listGrants(db: Db, keychainId: string): Promise<KeychainGrantRow[]> {
  return db
    .selectFrom("keychain_grants")
    .selectAll()
    .where("keychain_id", "=", keychainId)
    .orderBy("package_name")
    .execute();
}
