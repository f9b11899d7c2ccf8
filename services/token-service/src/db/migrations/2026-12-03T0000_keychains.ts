import { type Kysely, sql } from "kysely";

/**
 * Keychains (issue 12): a keychain's secret is a key of kind keychain
 * (`api_keys.keychain_id`, no scopes), so Verify, caches, revocation and the
 * sidecar treat it as a key; its third-party secrets are AES-256-GCM
 * ciphertexts under a data key per keychain, stored wrapped by a master key
 * named by `master_key_id`. Packages (a name owned by a team) have immutable
 * versions with a digest and the secret names they declare; a grant pins one
 * version and digest of one package per keychain and lists the names shared.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("api_keys").addColumn("keychain_id", "text").execute();
  await sql`create unique index api_keys_keychain_id_idx on api_keys (keychain_id) where keychain_id is not null`.execute(
    db,
  );
  // A keychain's secret authenticates its holder and nothing more: it can never be an admin key.
  await sql`alter table api_keys add constraint api_keys_keychain_no_scopes check (keychain_id is null or scopes = '{}')`.execute(
    db,
  );
  await db.schema
    .createTable("keychains")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("team_id", "text", (c) => c.notNull().references("teams.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("key_id", "text", (c) => c.notNull().unique().references("api_keys.id"))
    .addColumn("master_key_id", "text", (c) => c.notNull())
    .addColumn("wrapped_data_key", "bytea", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("created_by", "text", (c) => c.notNull())
    .execute();
  await sql`create index keychains_team_created_idx on keychains (team_id, created_at desc, id desc)`.execute(
    db,
  );
  // The re-wrap command looks for data keys under another master key than the active one.
  await sql`create index keychains_master_key_idx on keychains (master_key_id)`.execute(db);
  await db.schema
    .createTable("keychain_secrets")
    .addColumn("keychain_id", "text", (c) => c.notNull().references("keychains.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("ciphertext", "bytea", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_by", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("keychain_secrets_pkey", ["keychain_id", "name"])
    .execute();
  await db.schema
    .createTable("packages")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("team_id", "text", (c) => c.notNull().references("teams.id"))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable("package_versions")
    .addColumn("package_name", "text", (c) => c.notNull().references("packages.name"))
    .addColumn("version", "text", (c) => c.notNull())
    .addColumn("public", "boolean", (c) => c.notNull())
    .addColumn("sha256", "bytea", (c) => c.notNull().check(sql`octet_length(sha256) = 32`))
    // [{ name, description }], as declared by `keychain.required`.
    .addColumn("required", "jsonb", (c) => c.notNull())
    .addColumn("registered_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("registered_by", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("package_versions_pkey", ["package_name", "version"])
    .execute();
  await db.schema
    .createTable("keychain_grants")
    .addColumn("keychain_id", "text", (c) => c.notNull().references("keychains.id"))
    .addColumn("package_name", "text", (c) => c.notNull().references("packages.name"))
    .addColumn("version", "text", (c) => c.notNull())
    .addColumn("sha256", "bytea", (c) => c.notNull().check(sql`octet_length(sha256) = 32`))
    .addColumn("names", sql`text[]`, (c) => c.notNull())
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("granted_by", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("keychain_grants_pkey", ["keychain_id", "package_name"])
    .execute();
}

/** Drops the keychain tables and the column (keychains' keys stay, as scope-less keys). */
export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("keychain_grants").execute();
  await db.schema.dropTable("package_versions").execute();
  await db.schema.dropTable("packages").execute();
  await db.schema.dropTable("keychain_secrets").execute();
  await db.schema.dropTable("keychains").execute();
  await sql`alter table api_keys drop constraint api_keys_keychain_no_scopes`.execute(db);
  await sql`drop index if exists api_keys_keychain_id_idx`.execute(db);
  await db.schema.alterTable("api_keys").dropColumn("keychain_id").execute();
}
