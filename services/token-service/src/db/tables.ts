import type { ColumnType, Generated, Insertable, Selectable } from "kysely";

/** `teams`: owners of keys. */
export interface TeamTable {
  id: string;
  name: string;
  created_at: ColumnType<Date, Date | undefined, never>;
  /** The key format its keys are issued in; null = the deployment's default. */
  key_format: ColumnType<string | null, string | null | undefined, string | null>;
}

/** `api_keys`: one row per key; the token is stored only as its SHA-256. */
export interface ApiKeyTable {
  id: string;
  team_id: string;
  name: string;
  scopes: string[];
  /** `live`, `test` or a free-form label (`ENVIRONMENT_PATTERN` of `@latchkey/token`). */
  environment: string;
  token_hash: Uint8Array;
  hint: string;
  created_at: ColumnType<Date, Date | undefined, never>;
  created_by: string;
  expires_at: Date | null;
  enabled: boolean;
  /** Who disabled the key (`root` or an admin key id); null while enabled. */
  disabled_by: string | null;
  revoked_at: Date | null;
  revoked_reason: string | null;
  last_used_at: Date | null;
  metadata: ColumnType<Record<string, string>, string, string>;
  rotated_from: string | null;
  expiry_announced: ColumnType<boolean, boolean | undefined, boolean>;
  /** Uses left of a usage-limited key; null: no limit. bigint: a string from pg, a number from PGlite. */
  remaining: ColumnType<string | number | null, number | null | undefined, number | null>;
  /** `day` or `month`: when `remaining` is topped up to `refill_amount`; null: never. */
  refill_interval: ColumnType<
    "day" | "month" | null,
    "day" | "month" | null | undefined,
    "day" | "month" | null
  >;
  refill_amount: ColumnType<string | number | null, number | null | undefined, number | null>;
  /** Start of the UTC day or month of the last refill (or of when the limit was set). */
  refilled_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** The key's own rate limits (`[{ name, limit, windowSeconds }]`); `[]` for none. */
  rate_limits: ColumnType<StoredRateLimit[], string | undefined, string>;
  /** Its trust tier, mapped to limits by each sidecar's configuration; null for none. */
  tier: ColumnType<string | null, string | null | undefined, string | null>;
  /** Its owner (an external id: a user, an agent); null for none. */
  owner: ColumnType<string | null, string | null | undefined, string | null>;
  /** The name of its token's key format (`latchkey` for keys made before formats). */
  format: ColumnType<string, string | undefined, string>;
  /** The kid of the signing key that signed a `signed` key; null for other formats. */
  signing_kid: ColumnType<string | null, string | null | undefined, string | null>;
  /** An imported key's id in the system it came from, unique per team; null for keys issued here. */
  external_id: ColumnType<string | null, string | null | undefined, never>;
  /** SHA-256 of what was imported under `external_id`, to tell a re-run from a conflicting row. */
  import_fingerprint: ColumnType<Uint8Array | null, Uint8Array | null | undefined, never>;
  /** When the key was imported; null for keys issued here. */
  imported_at: ColumnType<Date | null, Date | null | undefined, never>;
  /** Set when the key is a keychain's secret (`kc_…`); such a key holds no scopes. */
  keychain_id: ColumnType<string | null, string | null | undefined, never>;
}

/** One of a key's rate limits as stored in `api_keys.rate_limits`. */
export interface StoredRateLimit {
  readonly name: string;
  readonly limit: number;
  readonly windowSeconds: number;
}

/** `rate_limit_counts`: Verify calls counted against a key's limit, per fixed window. */
export interface RateLimitCountTable {
  key_id: string;
  name: string;
  // bigint: pg returns it as a string, PGlite as a number.
  window_index: ColumnType<string | number, number, number>;
  count: number;
}

/** `key_event_outbox`: key changes waiting to be published, written in the change's transaction. */
export interface KeyEventOutboxTable {
  // bigserial: pg returns it as a string, PGlite as a number; normalize on read.
  id: Generated<string | number>;
  event_type: number;
  key_id: string;
  team_id: string;
  token_hash: Uint8Array;
  expires_at: Date | null;
  created_at: ColumnType<Date, Date | undefined, never>;
  published_at: Date | null;
  stream_sequence: ColumnType<string | number | null, number | null, number | null>;
  /** The writing request's W3C `traceparent` when it was traced and sampled (migration `outbox_trace_parent`). */
  trace_parent: ColumnType<string | null, string | null | undefined, string | null>;
}

/** `audit_log`: every admin action: who, what, when, which key. */
export interface AuditLogTable {
  id: Generated<string | number>;
  actor: string;
  action: string;
  team_id: string | null;
  key_id: string | null;
  request_id: string | null;
  details: ColumnType<Record<string, unknown>, string, never>;
  created_at: ColumnType<Date, Date | undefined, never>;
}

/** `root_credential`: the hash of a generated root key (one row at most). */
export interface RootCredentialTable {
  id: number;
  token_hash: Uint8Array;
  created_at: ColumnType<Date, Date | undefined, never>;
}

/** `usage_minutes`: requests per key, minute and outcome (`UsageOutcome`), from verifiers' reports. */
export interface UsageMinuteTable {
  key_id: string;
  minute: Date;
  outcome: number;
  team_id: string;
  // bigint: pg returns it as a string, PGlite as a number; normalize on read.
  count: ColumnType<string | number, number, number>;
}

/** `usage_batches`: ids of the usage reports stored, so a redelivery is not counted twice. */
export interface UsageBatchTable {
  id: string;
  received_at: ColumnType<Date, Date | undefined, never>;
}

/** `keychains`: a keychain's public fields and its data key, wrapped by a master key. */
export interface KeychainTable {
  id: string;
  team_id: string;
  name: string;
  /** Its secret's key (`api_keys.keychain_id` points back); revoked with it. */
  key_id: string;
  /** The master key that wraps `wrapped_data_key`. */
  master_key_id: string;
  /** The data key, AES-256-GCM under the master key (`keychains/envelope.ts`). */
  wrapped_data_key: Uint8Array;
  created_at: ColumnType<Date, Date | undefined, never>;
  created_by: string;
}

/** `keychain_secrets`: one third-party secret, AES-256-GCM under its keychain's data key. */
export interface KeychainSecretTable {
  keychain_id: string;
  name: string;
  ciphertext: Uint8Array;
  created_at: ColumnType<Date, Date | undefined, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
  updated_by: string;
}

/** `packages`: a package name and the team that owns it (registers its versions). */
export interface PackageTable {
  name: string;
  team_id: string;
  created_at: ColumnType<Date, Date | undefined, never>;
}

/** One entry of a package version's `keychain.required`. */
export interface StoredRequiredSecret {
  readonly name: string;
  readonly description: string;
}

/** `package_versions`: an immutable version: digest, declared names; only `public` may change. */
export interface PackageVersionTable {
  package_name: string;
  version: string;
  public: boolean;
  sha256: Uint8Array;
  required: ColumnType<StoredRequiredSecret[], string, never>;
  registered_at: ColumnType<Date, Date | undefined, never>;
  registered_by: string;
}

/** `keychain_grants`: a keychain's consent for one package, pinned to a version and digest. */
export interface KeychainGrantTable {
  keychain_id: string;
  package_name: string;
  version: string;
  sha256: Uint8Array;
  names: string[];
  updated_at: ColumnType<Date, Date | undefined, Date>;
  granted_by: string;
}

/** The database as kysely sees it. */
export interface Database {
  teams: TeamTable;
  api_keys: ApiKeyTable;
  key_event_outbox: KeyEventOutboxTable;
  audit_log: AuditLogTable;
  root_credential: RootCredentialTable;
  usage_minutes: UsageMinuteTable;
  usage_batches: UsageBatchTable;
  rate_limit_counts: RateLimitCountTable;
  keychains: KeychainTable;
  keychain_secrets: KeychainSecretTable;
  packages: PackageTable;
  package_versions: PackageVersionTable;
  keychain_grants: KeychainGrantTable;
}

/** A key row as read. */
export type ApiKeyRow = Selectable<ApiKeyTable>;
/** A key row to insert. */
export type NewApiKeyRow = Insertable<ApiKeyTable>;
/** A team row as read. */
export type TeamRow = Selectable<TeamTable>;
/** A keychain row as read. */
export type KeychainRow = Selectable<KeychainTable>;
/** A package version row as read. */
export type PackageVersionRow = Selectable<PackageVersionTable>;
/** A grant row as read. */
export type KeychainGrantRow = Selectable<KeychainGrantTable>;
