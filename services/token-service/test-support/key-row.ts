// Test-only: a whole `api_keys` row with every column at the value a freshly
// issued, unlimited, unimported key has, for unit tests that need a row
// without a database. Tests override what they are about.
import type { ApiKeyRow } from "../src/db/tables.js";

/**
 * An issued key's row: live, enabled, no expiry, no limits, no owner.
 *
 * @example
 * ```ts
 * const revoked = keyRow({ revoked_at: new Date() });
 * ```
 */
export function keyRow(fields: Partial<ApiKeyRow> = {}): ApiKeyRow {
  return {
    id: "key_0123456789012345678901",
    team_id: "team_0123456789012345678901",
    name: "k",
    scopes: ["read"],
    environment: "live",
    token_hash: new Uint8Array(32),
    hint: "",
    created_at: new Date(0),
    created_by: "root",
    expires_at: null,
    enabled: true,
    disabled_by: null,
    revoked_at: null,
    revoked_reason: null,
    last_used_at: null,
    metadata: {},
    rotated_from: null,
    expiry_announced: false,
    external_id: null,
    import_fingerprint: null,
    imported_at: null,
    keychain_id: null,
    remaining: null,
    refill_interval: null,
    refill_amount: null,
    refilled_at: null,
    rate_limits: [],
    tier: null,
    owner: null,
    format: "latchkey",
    signing_kid: null,
    ...fields,
  };
}
