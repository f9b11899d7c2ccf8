import { type Kysely, sql } from "kysely";
import { prepared } from "../db/prepared-statements.js";
import type { Database, StoredRequiredSecret } from "../db/tables.js";

/**
 * Everything ResolveSecrets decides on, read in one query: the presented
 * keychain secret's key (by token hash), its keychain and wrapped data key,
 * the keychain's grant for the package, the registry's entry for the
 * version presented, and the ciphertexts of the secrets both the grant names
 * and the version declares (all the rules could release; they are decrypted
 * only when the rules do). One round trip, a prepared statement: ResolveSecrets
 * answers with this and one audit write.
 */
export interface Resolution {
  readonly key_id: string;
  readonly team_id: string;
  readonly revoked_at: Date | null;
  readonly enabled: boolean;
  readonly expires_at: Date | null;
  readonly id: string;
  readonly master_key_id: string;
  readonly wrapped_data_key: Uint8Array;
  readonly grant_version: string | null;
  readonly grant_sha256: Uint8Array | null;
  readonly grant_names: string[] | null;
  readonly version_public: boolean | null;
  readonly version_sha256: Uint8Array | null;
  readonly version_required: StoredRequiredSecret[] | null;
  /** `[{ name, ciphertext (base64) }]` of the stored secrets named by both the grant and the version. */
  readonly sealed: { name: string; ciphertext: string }[];
}

/** The resolution state for a keychain secret's hash, or undefined when no keychain's key has it. */
export async function loadResolution(
  db: Kysely<Database>,
  tokenHash: Uint8Array,
  packageName: string,
  version: string,
): Promise<Resolution | undefined> {
  const query = db
    .selectFrom("api_keys as k")
    .innerJoin("keychains as c", "c.id", "k.keychain_id")
    .leftJoin("keychain_grants as g", (join) =>
      join.onRef("g.keychain_id", "=", "c.id").on("g.package_name", "=", packageName),
    )
    .leftJoin("package_versions as v", (join) =>
      join.on("v.package_name", "=", packageName).on("v.version", "=", version),
    )
    .select([
      "k.id as key_id",
      "k.team_id",
      "k.revoked_at",
      "k.enabled",
      "k.expires_at",
      "c.id",
      "c.master_key_id",
      "c.wrapped_data_key",
      "g.version as grant_version",
      "g.sha256 as grant_sha256",
      "g.names as grant_names",
      "v.public as version_public",
      "v.sha256 as version_sha256",
      "v.required as version_required",
      sql<{ name: string; ciphertext: string }[]>`coalesce((
        select json_agg(json_build_object('name', s.name, 'ciphertext', encode(s.ciphertext, 'base64')))
          from keychain_secrets s
         where s.keychain_id = c.id and s.name = any(g.names)
           and v.required @> jsonb_build_array(jsonb_build_object('name', s.name))), '[]'::json)`.as(
        "sealed",
      ),
    ])
    .where("k.token_hash", "=", tokenHash);
  return (await db.executeQuery(prepared(query))).rows[0];
}
