import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type ImportKeysRequest,
  type ImportKeysResponseSchema,
  ImportRowStatus,
  KeyEventType,
} from "@latchkey/proto";
import type { KeyFormats } from "@latchkey/token";
import type { Transaction } from "kysely";
import { recordAudits } from "../audit/audit.repository.js";
import { assertTeamAccess } from "../auth/admin-authenticator.js";
import { authorizeKeyWrite } from "../auth/key-authority.js";
import type { Principal } from "../auth/principal.js";
import type { Database, NewApiKeyRow } from "../db/tables.js";
import { newKeyId } from "../ids.js";
import { findKeysByExternalIds, findKeysByHashes, insertKeys } from "../keys/key.repository.js";
import { invalidateKeys } from "../keys/key-invalidation.js";
import { enqueueKeyEvents } from "../outbox/outbox.repository.js";
import { beginAdminCall } from "../rpc/admin-call.js";
import type { ServiceDeps } from "../rpc/service-deps.js";
import { invalidArgument } from "../rpc/validate.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import { findTeam } from "../teams/team.repository.js";
import { NO_USAGE_LIMIT } from "../usage/usage-limit.js";
import { type ExistingKey, judgeAgainstDatabase } from "./import-conflicts.js";
import { checkImportRow, type ImportCandidate } from "./import-row.js";

const DEFAULT_MAX_BATCH = 1_000;

/** Where one row of a batch stands while the batch is checked. */
type RowState =
  | { readonly kind: "new"; readonly candidate: ImportCandidate }
  | { readonly kind: "imported"; readonly keyId: string }
  | { readonly kind: "already"; readonly keyId: string }
  | { readonly kind: "rejected"; readonly error: string; readonly code: Code };

type ImportResponse = MessageInitShape<typeof ImportKeysResponseSchema>;

/**
 * ImportKeys: a batch of existing keys, all or nothing. Each row is checked
 * alone (fields, then who may import it), then against the batch (repeated
 * external ids or hashes) and the database (its external id imported before,
 * its hash held by another key, its team). A single rejected row means
 * nothing is written; otherwise the new keys, one IMPORTED key event and one
 * audit entry each are written in one transaction.
 */
export async function importKeys(
  deps: ServiceDeps,
  request: ImportKeysRequest,
  ctx: RpcContext,
): Promise<ImportResponse> {
  const principal = await beginAdminCall(deps, ctx, request);
  const maxBatch = deps.importMaxBatch ?? DEFAULT_MAX_BATCH;
  if (request.keys.length === 0) throw invalidArgument("keys", "at least one key is required");
  if (request.keys.length > maxBatch) throw invalidArgument("keys", `at most ${maxBatch} keys per call`);
  const now = Date.now();
  const states: RowState[] = request.keys.map((row) => checkRow(principal, row, deps.formats, now));
  rejectRepeats(states);
  try {
    const inserted = await deps.db.transaction().execute(async (trx) => {
      await checkAgainstDatabase(trx, principal, states);
      if (states.some((state) => state.kind === "rejected")) return undefined;
      const rows = await insertKeys(
        trx,
        states.flatMap((state) => newRow(state, principal, now)),
      );
      await enqueueKeyEvents(trx, KeyEventType.IMPORTED, rows);
      await recordAudits(
        trx,
        rows.map((row) => ({
          actor: principal.actor,
          action: "key.import",
          teamId: row.team_id,
          keyId: row.id,
          requestId: ctx.requestId,
          details: {
            externalId: row.external_id,
            name: row.name,
            scopes: row.scopes,
            environment: row.environment,
            format: row.format,
            ...(row.owner ? { owner: row.owner } : {}),
          },
        })),
      );
      return rows;
    });
    if (inserted === undefined) return answer(request, states, false);
    // A cache may hold NOT_FOUND for a key that was in its users' hands before it was imported.
    invalidateKeys(deps, inserted);
    const idOf = new Map(inserted.map((row) => [`${row.team_id} ${row.external_id}`, row.id]));
    for (const [index, state] of states.entries()) {
      if (state.kind !== "new") continue;
      const { teamId, externalId } = state.candidate;
      states[index] = { kind: "imported", keyId: idOf.get(`${teamId} ${externalId}`) ?? "" };
    }
    return answer(request, states, true);
  } catch (error) {
    // A concurrent import of the same keys won the unique index. The driver's
    // message would name the conflicting hash, so it is not passed on as the cause.
    if (isUniqueViolation(error)) {
      throw new ConnectError(
        "another call imported some of these keys at the same time; send the batch again",
        Code.Aborted,
      );
    }
    // Any other database error goes to the log as the cause: without its detail, which may quote a row.
    if (typeof error === "object" && error !== null && "detail" in error) {
      (error as { detail?: unknown }).detail = undefined;
    }
    throw error;
  } finally {
    // Counts only: never a token, a hash or a row's content.
    const counts = countStates(states);
    deps.logger.info(
      {
        actor: principal.actor,
        requestId: ctx.requestId,
        imported: counts.imported,
        alreadyImported: counts.already,
        rejected: counts.rejected,
      },
      "import batch",
    );
  }
}

function checkRow(
  principal: Principal,
  row: ImportKeysRequest["keys"][number],
  formats: KeyFormats,
  now: number,
): RowState {
  try {
    const candidate = checkImportRow(row, formats, now);
    assertTeamAccess(principal, candidate.teamId);
    authorizeKeyWrite(principal, { kind: "import", scopes: candidate.scopes });
    return { kind: "new", candidate };
  } catch (error) {
    if (error instanceof ConnectError) return { kind: "rejected", error: error.rawMessage, code: error.code };
    throw error;
  }
}

/** The second of two rows with one external id (per team) or one hash is rejected, naming the first. */
function rejectRepeats(states: RowState[]): void {
  const byExternalId = new Map<string, number>();
  const byHash = new Map<string, number>();
  for (const [index, state] of states.entries()) {
    if (state.kind !== "new") continue;
    const { teamId, externalId, tokenHash, secretField } = state.candidate;
    const idKey = `${teamId} ${externalId}`;
    const hashKey = tokenHash.toString("base64");
    const sameId = byExternalId.get(idKey);
    const sameHash = byHash.get(hashKey);
    if (sameId !== undefined) {
      states[index] = repeat("external_id", sameId);
    } else if (sameHash !== undefined) {
      states[index] = repeat(secretField, sameHash);
    } else {
      byExternalId.set(idKey, index);
      byHash.set(hashKey, index);
    }
  }
}

function repeat(field: string, first: number): RowState {
  return {
    kind: "rejected",
    error: `${field}: the same as key ${first} of this batch (a key is imported once)`,
    code: Code.AlreadyExists,
  };
}

/** Teams that exist, external ids imported before, hashes held by other keys. */
async function checkAgainstDatabase(
  trx: Transaction<Database>,
  principal: Principal,
  states: RowState[],
): Promise<void> {
  const candidates = states.flatMap((state) => (state.kind === "new" ? [state.candidate] : []));
  const teams = new Map<string, boolean>();
  for (const teamId of new Set(candidates.map((c) => c.teamId))) {
    teams.set(teamId, (await findTeam(trx, teamId)) !== undefined);
  }
  const imported = new Map<string, ExistingKey>();
  for (const teamId of teams.keys()) {
    const ids = candidates.filter((c) => c.teamId === teamId).map((c) => c.externalId);
    for (const row of await findKeysByExternalIds(trx, teamId, ids)) {
      imported.set(`${teamId} ${row.external_id}`, {
        id: row.id,
        teamId,
        externalId: row.external_id,
        fingerprint: row.import_fingerprint,
      });
    }
  }
  const holders = new Map<string, ExistingKey>();
  for (const row of await findKeysByHashes(
    trx,
    candidates.map((c) => c.tokenHash),
  )) {
    holders.set(Buffer.from(row.token_hash).toString("base64"), {
      id: row.id,
      teamId: row.team_id,
      externalId: row.external_id,
      fingerprint: row.import_fingerprint,
    });
  }
  for (const [index, state] of states.entries()) {
    if (state.kind !== "new") continue;
    const { candidate } = state;
    if (!teams.get(candidate.teamId)) {
      states[index] = {
        kind: "rejected",
        error: `team_id: team ${candidate.teamId} not found`,
        code: Code.NotFound,
      };
      continue;
    }
    const conflict = judgeAgainstDatabase(
      candidate,
      imported.get(`${candidate.teamId} ${candidate.externalId}`),
      holders.get(candidate.tokenHash.toString("base64")),
      principal,
    );
    if (conflict.kind !== "none") states[index] = conflict;
  }
}

function newRow(state: RowState, principal: Principal, now: number): NewApiKeyRow[] {
  if (state.kind !== "new") return [];
  const c = state.candidate;
  const importedAt = new Date(now);
  return [
    {
      id: newKeyId(),
      team_id: c.teamId,
      name: c.name,
      scopes: c.scopes,
      environment: c.environment,
      token_hash: c.tokenHash,
      hint: c.hint,
      created_at: c.createdAt ?? importedAt,
      created_by: principal.actor,
      expires_at: c.expiresAt,
      enabled: true,
      disabled_by: null,
      revoked_at: null,
      revoked_reason: null,
      last_used_at: c.lastUsedAt,
      metadata: JSON.stringify(c.metadata),
      rotated_from: null,
      ...NO_USAGE_LIMIT,
      rate_limits: "[]",
      tier: null,
      owner: c.owner,
      signing_kid: c.signingKid,
      external_id: c.externalId,
      import_fingerprint: c.fingerprint,
      imported_at: importedAt,
      format: c.format,
    },
  ];
}

function answer(request: ImportKeysRequest, states: readonly RowState[], committed: boolean): ImportResponse {
  const counts = countStates(states);
  return {
    committed,
    imported: counts.imported,
    alreadyImported: counts.already,
    rejected: counts.rejected,
    results: states.map((state, index) => {
      const externalId = request.keys[index]?.externalId ?? "";
      switch (state.kind) {
        case "rejected":
          return {
            index,
            externalId,
            status: ImportRowStatus.REJECTED,
            error: state.error,
            errorCode: Code[state.code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase(),
          };
        case "imported":
          return { index, externalId, status: ImportRowStatus.IMPORTED, keyId: state.keyId };
        case "already":
          return { index, externalId, status: ImportRowStatus.ALREADY_IMPORTED, keyId: state.keyId };
        default:
          return { index, externalId, status: ImportRowStatus.NOT_WRITTEN };
      }
    }),
  };
}

function countStates(states: readonly RowState[]): Record<RowState["kind"], number> {
  const counts = { new: 0, imported: 0, already: 0, rejected: 0 };
  for (const state of states) counts[state.kind] += 1;
  return counts;
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "23505";
}
