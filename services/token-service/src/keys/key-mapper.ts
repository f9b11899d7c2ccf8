import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Key, KeySchema } from "@latchkey/proto";
import type { ApiKeyRow } from "../db/tables.js";
import { usageLimitOf } from "../usage/usage-limit.js";
import { rateLimitsToProto } from "./key-rate-limits.js";

/**
 * The public fields of a key row, as the API returns them. The token hash is
 * never part of them.
 */
export function keyFromRow(row: ApiKeyRow): Key {
  return create(KeySchema, {
    id: row.id,
    teamId: row.team_id,
    name: row.name,
    scopes: row.scopes,
    environment: row.environment,
    hint: row.hint,
    createTime: timestampFromDate(row.created_at),
    expireTime: row.expires_at ? timestampFromDate(row.expires_at) : undefined,
    lastUsedTime: row.last_used_at ? timestampFromDate(row.last_used_at) : undefined,
    revokeTime: row.revoked_at ? timestampFromDate(row.revoked_at) : undefined,
    revokeReason: row.revoked_reason ?? "",
    enabled: row.enabled,
    metadata: row.metadata ?? {},
    createdBy: row.created_by,
    rotatedFrom: row.rotated_from ?? "",
    usageLimit: usageLimitOf(row),
    rateLimits: rateLimitsToProto(row.rate_limits),
    tier: row.tier ?? "",
    owner: row.owner ?? "",
    format: row.format,
    externalId: row.external_id ?? "",
    importTime: row.imported_at ? timestampFromDate(row.imported_at) : undefined,
    keychainId: row.keychain_id ?? "",
  });
}
