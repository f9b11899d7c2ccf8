import { Code } from "@connectrpc/connect";
import type { Principal } from "../auth/principal.js";
import type { ImportCandidate } from "./import-row.js";

/** A key already in the database that an import row may meet. */
export interface ExistingKey {
  readonly id: string;
  readonly teamId: string;
  readonly externalId: string | null;
  readonly fingerprint: Uint8Array | null;
}

/** What the database says about one row: nothing in the way, imported before, or refused. */
export type Conflict =
  | { readonly kind: "none" }
  | { readonly kind: "already"; readonly keyId: string }
  | { readonly kind: "rejected"; readonly error: string; readonly code: Code };

/**
 * Judges one import row against what the database holds: the key imported
 * before under its external id (`byExternalId`), and the key holding its
 * token's hash (`byHash`). The same external id with the same fingerprint is
 * the same import (a re-run); with another it is a conflict; a hash held by
 * another key is refused, naming that key only to a caller who may see it.
 *
 * The two are read by two statements, each seeing the latest commit: a retry
 * racing the attempt it replaces can miss that attempt's row by external id
 * and then find it by hash. A hash held by the row's own external id is
 * therefore judged as its earlier import, never as another key's token.
 */
export function judgeAgainstDatabase(
  candidate: Pick<ImportCandidate, "teamId" | "externalId" | "fingerprint" | "secretField">,
  byExternalId: ExistingKey | undefined,
  byHash: ExistingKey | undefined,
  principal: Principal,
): Conflict {
  const { teamId, externalId, fingerprint, secretField } = candidate;
  const sameRow = byHash !== undefined && byHash.teamId === teamId && byHash.externalId === externalId;
  const before = byExternalId ?? (sameRow ? byHash : undefined);
  if (before !== undefined) {
    if (before.fingerprint !== null && Buffer.from(before.fingerprint).equals(fingerprint)) {
      return { kind: "already", keyId: before.id };
    }
    return {
      kind: "rejected",
      error: `external_id: ${externalId} was imported before with different content (key ${before.id}); change that key with Update, Revoke or Rotate`,
      code: Code.AlreadyExists,
    };
  }
  if (byHash !== undefined) {
    const visible = principal.kind === "root" || principal.teamId === byHash.teamId;
    return {
      kind: "rejected",
      error: `${secretField}: another key already has this token${visible ? ` (${byHash.id})` : ""}`,
      code: Code.AlreadyExists,
    };
  }
  return { kind: "none" };
}
