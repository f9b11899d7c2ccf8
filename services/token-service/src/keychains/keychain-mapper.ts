import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { GrantSchema, KeychainSchema, PackageVersionSchema, SecretInfoSchema } from "@latchkey/proto";
import type { KeychainGrantRow, PackageVersionRow } from "../db/tables.js";
import type { KeychainView, SecretInfoRow } from "./keychain.repository.js";
import { hex } from "./release-rules.js";

/** A keychain's public fields: never its secret, data key or the secrets' values. */
export function keychainFromView(view: KeychainView): MessageInitShape<typeof KeychainSchema> {
  return {
    id: view.id,
    teamId: view.team_id,
    name: view.name,
    keyId: view.key_id,
    hint: view.hint,
    createTime: timestampFromDate(view.created_at),
    createdBy: view.created_by,
    revokeTime: view.revoked_at ? timestampFromDate(view.revoked_at) : undefined,
    revokeReason: view.revoked_reason ?? "",
    masterKeyId: view.master_key_id,
    secretCount: view.secret_count,
  };
}

/** A stored secret's name and times. */
export function secretInfoFromRow(row: SecretInfoRow): MessageInitShape<typeof SecretInfoSchema> {
  return {
    name: row.name,
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
    updatedBy: row.updated_by,
  };
}

/** A grant as the API shows it. */
export function grantFromRow(row: KeychainGrantRow): MessageInitShape<typeof GrantSchema> {
  return {
    keychainId: row.keychain_id,
    packageName: row.package_name,
    version: row.version,
    sha256: hex(row.sha256),
    names: row.names,
    updateTime: timestampFromDate(row.updated_at),
    grantedBy: row.granted_by,
  };
}

/** A registered package version as the API shows it. */
export function packageVersionFromRow(
  row: PackageVersionRow,
  teamId: string,
): MessageInitShape<typeof PackageVersionSchema> {
  return {
    name: row.package_name,
    version: row.version,
    public: row.public,
    sha256: hex(row.sha256),
    required: row.required.map((entry) => ({ name: entry.name, description: entry.description })),
    teamId,
    registerTime: timestampFromDate(row.registered_at),
  };
}
