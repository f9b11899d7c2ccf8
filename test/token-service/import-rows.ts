// Rows for ImportKeys as tests write them, and what a test counts to say that a
// refused batch wrote nothing.
import { createHash } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ImportKey, ImportKeySchema } from "@latchkey/proto";
import { generateToken } from "@latchkey/token";
import type pg from "pg";

/** An import row's fields, with the key as `token` (plaintext) or `sha256` (its hash). */
export type ImportRowInit = Omit<Partial<ImportKey>, "secret" | "$typeName"> & {
  token?: string;
  sha256?: string;
};

/** The SHA-256 of a token as 64 hex characters, as seed 003's database keeps it. */
export const sha256Hex = (token: string): string => createHash("sha256").update(token).digest("hex");

/**
 * An ImportKey for `teamId`, named `imported` with scope `read` unless `init`
 * says otherwise; a fresh `lk_live_` token when it gives no key.
 *
 * @example
 * ```ts
 * await service.tokens().importKeys({ keys: [importRow(teamId, { externalId: "a-1", sha256 })] });
 * ```
 */
export function importRow(teamId: string, init: ImportRowInit): MessageInitShape<typeof ImportKeySchema> {
  const { token, sha256, ...rest } = init;
  return {
    teamId,
    name: "imported",
    scopes: ["read"],
    ...rest,
    secret:
      sha256 !== undefined
        ? { case: "tokenSha256" as const, value: sha256 }
        : { case: "token" as const, value: token ?? generateToken({ prefix: "lk", environment: "live" }) },
  };
}

/** Rows in the three tables an import writes: keys, audit entries, outbox events. */
export async function writtenCounts(sql: pg.Pool): Promise<{ keys: number; audit: number; events: number }> {
  const { rows } = await sql.query(
    "select (select count(*)::int from api_keys) as keys, (select count(*)::int from audit_log) as audit, (select count(*)::int from key_event_outbox) as events",
  );
  return rows[0];
}
