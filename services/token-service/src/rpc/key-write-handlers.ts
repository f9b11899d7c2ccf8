import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type IssueRequest,
  type IssueResponseSchema,
  KeyEventType,
  type RevokeRequest,
  type RevokeResponseSchema,
  type RotateRequest,
  type RotateResponseSchema,
} from "@latchkey/proto";
import { hashToken, tokenEnvironment } from "@latchkey/token";
import type { Transaction } from "kysely";
import { recordAudit } from "../audit/audit.repository.js";
import { assertTeamAccess } from "../auth/admin-authenticator.js";
import { authorizeKeyWrite } from "../auth/key-authority.js";
import type { ApiKeyRow, Database, NewApiKeyRow, StoredRateLimit } from "../db/tables.js";
import { newKeyId } from "../ids.js";
import { insertKey, updateKey } from "../keys/key.repository.js";
import { chooseKeyFormat, type NewToken, newTokenFor, requireKeyFormat } from "../keys/key-format-choice.js";
import { invalidateKeys } from "../keys/key-invalidation.js";
import { keyFromRow } from "../keys/key-mapper.js";
import { requireEnvironment, requireOwner } from "../keys/key-owner-environment.js";
import { requireRateLimits, requireTier } from "../keys/key-rate-limits.js";
import { type KeyUnusableReason, type KeyUsabilityOptions, keyUsability } from "../keys/key-usability.js";
import { enqueueKeyEvent } from "../outbox/outbox.repository.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import { findTeam } from "../teams/team.repository.js";
import { keyTraffic } from "../usage/usage-handlers.js";
import { NO_USAGE_LIMIT, requireUsageLimit } from "../usage/usage-limit.js";
import { beginAdminCall, lockKey } from "./admin-call.js";
import { announceRevocation, durationField, waitTimeoutMs } from "./revocation-announcement.js";
import type { ServiceDeps } from "./service-deps.js";
import {
  optionalExpiry,
  optionalText,
  requireKeyId,
  requireMetadata,
  requireName,
  requireScopes,
  requireTeamId,
} from "./validate.js";

const MAX_GRACE_MS = 30 * 86_400_000;
// A disabled key may be rotated: it returns a token, and the replacement stays disabled.
const ROTATABLE: KeyUsabilityOptions = { allowDisabled: true };
const NOT_ROTATABLE: Readonly<Record<KeyUnusableReason, string>> = {
  revoked: "is revoked",
  disabled: "is disabled",
  expired: "has expired",
};

/** The row of a new key for `made`'s token: its id, hash, hint and format, never revoked nor used. */
export function newKeyRow(
  made: NewToken & { readonly id: string },
  fields: Omit<
    NewApiKeyRow,
    | "id"
    | "token_hash"
    | "hint"
    | "format"
    | "signing_kid"
    | "revoked_at"
    | "revoked_reason"
    | "last_used_at"
    | "metadata"
    | "rate_limits"
  > & { readonly metadata: Record<string, string>; readonly rate_limits: readonly StoredRateLimit[] },
): NewApiKeyRow {
  return {
    ...fields,
    id: made.id,
    token_hash: hashToken(made.token),
    hint: made.hint,
    format: made.format,
    signing_kid: made.signing_kid,
    revoked_at: null,
    revoked_reason: null,
    last_used_at: null,
    metadata: JSON.stringify(fields.metadata),
    rate_limits: JSON.stringify(fields.rate_limits),
  };
}

/** Issue: a new key; the plaintext is in the response and nowhere else. */
export async function issueKey(
  deps: ServiceDeps,
  request: IssueRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof IssueResponseSchema>> {
  const principal = await beginAdminCall(deps, ctx, request);
  const teamId = requireTeamId(request.teamId);
  assertTeamAccess(principal, teamId);
  const name = requireName(request.name);
  const scopes = requireScopes(request.scopes);
  authorizeKeyWrite(principal, { kind: "issue", scopes });
  const environment = requireEnvironment(request.environment);
  const owner = requireOwner(request.owner);
  const expiresAt = optionalExpiry(request.expireTime);
  const metadata = requireMetadata(request.metadata);
  const usageLimit = request.usageLimit
    ? requireUsageLimit(request.usageLimit, "usage_limit")
    : NO_USAGE_LIMIT;
  const rateLimits = requireRateLimits(request.rateLimits);
  const tier = requireTier(request.tier);
  const requestedFormat = request.format === "" ? "" : requireKeyFormat(deps, request.format, "format");
  let token = "";
  const row = await deps.db.transaction().execute(async (trx) => {
    const team = await findTeam(trx, teamId);
    if (!team) throw new ConnectError(`team ${teamId} not found`, Code.NotFound);
    // The format: the request's, else the team's, else the deployment's; a signed key signs its own id.
    const id = newKeyId();
    const made = newTokenFor(deps, chooseKeyFormat(deps, requestedFormat, team.key_format), {
      id,
      teamId,
      scopes,
      environment: tokenEnvironment(environment),
      expiresAt,
    });
    token = made.token;
    const inserted = await insertKey(
      trx,
      newKeyRow(
        { ...made, id },
        {
          team_id: teamId,
          name,
          scopes,
          environment,
          created_at: new Date(),
          created_by: principal.actor,
          expires_at: expiresAt,
          enabled: true,
          disabled_by: null,
          metadata,
          rotated_from: null,
          ...usageLimit,
          rate_limits: rateLimits,
          tier,
          owner,
        },
      ),
    );
    await recordAudit(trx, {
      actor: principal.actor,
      action: "key.issue",
      teamId,
      keyId: inserted.id,
      requestId: ctx.requestId,
      details: {
        name,
        scopes,
        environment,
        ...(usageLimit.remaining !== null ? { usageLimited: true } : {}),
        ...(rateLimits.length > 0 ? { rateLimits } : {}),
        ...(tier ? { tier } : {}),
        ...(owner ? { owner } : {}),
      },
    });
    return inserted;
  });
  deps.logger.info({ keyId: row.id, teamId, actor: principal.actor, requestId: ctx.requestId }, "key issued");
  return { key: keyFromRow(row), token };
}

/** Revoke: permanent; a no-op on an already revoked key. Optionally waits for verifiers to confirm. */
export async function revokeKey(
  deps: ServiceDeps,
  request: RevokeRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof RevokeResponseSchema>> {
  const principal = await beginAdminCall(deps, ctx, request);
  const keyId = requireKeyId(request.keyId);
  const reason = optionalText(request.reason, "reason", 500);
  const waitMs = waitTimeoutMs(request.waitTimeout);
  const { row, eventId } = await deps.db.transaction().execute(async (trx) => {
    const current = await lockKey(trx, principal, keyId);
    authorizeKeyWrite(principal, { kind: "revoke", key: current });
    const revoked = await revokeKeyRow(trx, current, reason);
    if (revoked.eventId !== undefined) {
      await recordAudit(trx, {
        actor: principal.actor,
        action: "key.revoke",
        teamId: current.team_id,
        keyId,
        requestId: ctx.requestId,
        details: reason ? { reason } : {},
      });
    }
    return revoked;
  });
  const propagation = await announceRevocation(deps, row, eventId, {
    requested: request.waitTimeout !== undefined,
    ms: waitMs,
  });
  deps.logger.info(
    { keyId, teamId: row.team_id, actor: principal.actor, requestId: ctx.requestId },
    "key revoked",
  );
  return { key: keyFromRow(row), ...(propagation ? { propagation } : {}) };
}

/**
 * Revokes a key row locked in `trx` and writes its REVOKED event; a revoked
 * key is left as it is (no event).
 *
 * @returns the row after the change and the event's outbox id (undefined when it was revoked already).
 */
export async function revokeKeyRow(
  trx: Transaction<Database>,
  current: ApiKeyRow,
  reason: string | null,
): Promise<{ row: ApiKeyRow; eventId: number | undefined }> {
  if (current.revoked_at) return { row: current, eventId: undefined };
  const updated = await updateKey(trx, current.id, { revoked_at: new Date(), revoked_reason: reason });
  return { row: updated, eventId: await enqueueKeyEvent(trx, KeyEventType.REVOKED, updated) };
}

/** Rotate: a replacement key now; the old one expires after the grace period. */
export async function rotateKey(
  deps: ServiceDeps,
  request: RotateRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof RotateResponseSchema>> {
  const principal = await beginAdminCall(deps, ctx, request);
  const keyId = requireKeyId(request.keyId);
  const graceMs = durationField(request.gracePeriod, "grace_period", MAX_GRACE_MS);
  const result = await deps.db.transaction().execute(async (trx) => {
    const old = await lockKey(trx, principal, keyId);
    authorizeKeyWrite(principal, { kind: "rotate", key: old });
    const now = new Date();
    const usability = keyUsability(old, now.getTime(), ROTATABLE);
    if (!usability.usable) {
      throw new ConnectError(
        `key ${keyId} ${NOT_ROTATABLE[usability.reason]}; issue a new key instead`,
        Code.FailedPrecondition,
      );
    }
    // A replacement is made in its team's format (or the deployment's), whatever the old key's was.
    const team = await findTeam(trx, old.team_id);
    const id = newKeyId();
    const made = newTokenFor(deps, chooseKeyFormat(deps, "", team?.key_format ?? null), {
      id,
      teamId: old.team_id,
      scopes: old.scopes,
      environment: tokenEnvironment(old.environment),
      expiresAt: old.expires_at,
    });
    const token = made.token;
    const fresh = await insertKey(
      trx,
      newKeyRow(
        { ...made, id },
        {
          team_id: old.team_id,
          name: old.name,
          scopes: old.scopes,
          environment: old.environment,
          created_at: now,
          created_by: principal.actor,
          expires_at: old.expires_at,
          enabled: old.enabled,
          // A replacement of a disabled key stays out of reach of whoever could not re-enable the old one.
          disabled_by: old.disabled_by,
          metadata: old.metadata ?? {},
          rotated_from: old.id,
          // The replacement carries the budget on; the old key's remaining uses in its grace period are its own.
          remaining: old.remaining === null ? null : Number(old.remaining),
          refill_interval: old.refill_interval,
          refill_amount: old.refill_amount === null ? null : Number(old.refill_amount),
          refilled_at: old.refilled_at,
          // The replacement is limited as the old key was.
          rate_limits: old.rate_limits ?? [],
          tier: old.tier,
          owner: old.owner,
        },
      ),
    );
    const graceEnd = new Date(now.getTime() + graceMs);
    const expires = old.expires_at && old.expires_at < graceEnd ? old.expires_at : graceEnd;
    const previous = await updateKey(trx, old.id, { expires_at: expires });
    await enqueueKeyEvent(trx, KeyEventType.ROTATED, previous);
    await recordAudit(trx, {
      actor: principal.actor,
      action: "key.rotate",
      teamId: old.team_id,
      keyId: old.id,
      requestId: ctx.requestId,
      details: { newKeyId: fresh.id, graceMs },
    });
    return { fresh, previous, token };
  });
  invalidateKeys(deps, [result.previous]);
  deps.logger.info(
    { keyId, newKeyId: result.fresh.id, actor: principal.actor, requestId: ctx.requestId },
    "key rotated",
  );
  const [previousKeyTraffic] = await keyTraffic(deps, [result.previous]);
  return {
    key: keyFromRow(result.fresh),
    token: result.token,
    previousKey: keyFromRow(result.previous),
    previousKeyTraffic,
  };
}
