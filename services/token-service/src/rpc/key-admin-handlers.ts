import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type GetRequest,
  type GetResponseSchema,
  KeyEventType,
  KeyStateFilter,
  type ListRequest,
  type ListResponseSchema,
  type UpdateRequest,
  type UpdateResponseSchema,
} from "@latchkey/proto";
import { recordAudit } from "../audit/audit.repository.js";
import { authorizeKeyWrite } from "../auth/key-authority.js";
import {
  findKeyById,
  type KeyChanges,
  type KeyListState,
  listKeys,
  updateKey,
} from "../keys/key.repository.js";
import { invalidateKeys } from "../keys/key-invalidation.js";
import { keyFromRow } from "../keys/key-mapper.js";
import { requireEnvironment, requireOwner } from "../keys/key-owner-environment.js";
import { requireRateLimits, requireTier } from "../keys/key-rate-limits.js";
import { enqueueKeyEvent } from "../outbox/outbox.repository.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import { keyTraffic, requestsLast24h } from "../usage/usage-handlers.js";
import { NO_USAGE_LIMIT, requireUsageLimit } from "../usage/usage-limit.js";
import { beginAdminCall, lockKey, requestedTeam, visibleKey } from "./admin-call.js";
import { decodePageToken, pageOf } from "./page-token.js";
import type { ServiceDeps } from "./service-deps.js";
import {
  invalidArgument,
  optionalText,
  pageSize,
  rejectUnknownFields,
  requireKeyId,
  requireMetadata,
  requireName,
  requireScopes,
} from "./validate.js";

/** Get: one key's public fields. */
export async function getKey(
  deps: ServiceDeps,
  request: GetRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof GetResponseSchema>> {
  const principal = await beginAdminCall(deps, ctx, request);
  const keyId = requireKeyId(request.keyId);
  const row = await visibleKey(deps.db, principal, keyId);
  // The predecessor is read for its last use; it is the same team's key (Rotate keeps the team).
  const predecessor = row.rotated_from ? await findKeyById(deps.db, row.rotated_from) : undefined;
  const [counts, traffic] = await Promise.all([
    requestsLast24h(deps, [row]),
    keyTraffic(deps, predecessor ? [row, predecessor] : [row]),
  ]);
  return {
    key: { ...keyFromRow(row), requests24h: BigInt(counts.get(row.id) ?? 0) },
    traffic: traffic[0],
    predecessorTraffic: traffic[1],
  };
}

/** The wire's state filter as the repository's; an unknown number is a bad request, not "every state". */
function stateFilter(state: KeyStateFilter): KeyListState | undefined {
  switch (state) {
    case KeyStateFilter.UNSPECIFIED:
      return undefined;
    case KeyStateFilter.ACTIVE:
      return "active";
    case KeyStateFilter.DISABLED:
      return "disabled";
    case KeyStateFilter.EXPIRED:
      return "expired";
    case KeyStateFilter.REVOKED:
      return "revoked";
    default:
      throw invalidArgument("state", `${state} is not a KeyStateFilter`);
  }
}

/** A name filter: 1–100 characters without control characters, matched as typed (not trimmed). */
function nameFilter(value: string): string {
  return optionalText(value, "name_contains", 100) ?? "";
}

/** List: a team's keys, newest first, paged, filtered by name, environment and state. */
export async function listTeamKeys(
  deps: ServiceDeps,
  request: ListRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof ListResponseSchema>> {
  const principal = await beginAdminCall(deps, ctx, request);
  const teamId = requestedTeam(principal, request.teamId);
  const limit = pageSize(request.pageSize);
  const rows = await listKeys(deps.db, {
    teamId,
    limit,
    after: decodePageToken(request.pageToken),
    includeRevoked: request.includeRevoked,
    nameContains: request.nameContains === "" ? undefined : nameFilter(request.nameContains),
    environment: request.environment === "" ? undefined : requireEnvironment(request.environment),
    state: stateFilter(request.state),
  });
  const { page, nextPageToken } = pageOf(rows, limit);
  // One grouped query for the whole page, not one per key.
  const counts = await requestsLast24h(deps, page);
  return {
    keys: page.map((row) => ({ ...keyFromRow(row), requests24h: BigInt(counts.get(row.id) ?? 0) })),
    nextPageToken,
  };
}

/** Update: name, scopes, metadata, enabled; each kind of change becomes a key event. */
export async function updateKeyFields(
  deps: ServiceDeps,
  request: UpdateRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof UpdateResponseSchema>> {
  const principal = await beginAdminCall(deps, ctx, request);
  if (request.scopes) rejectUnknownFields(request.scopes, "UpdateRequest.scopes");
  if (request.metadata) rejectUnknownFields(request.metadata, "UpdateRequest.metadata");
  if (request.rateLimits) rejectUnknownFields(request.rateLimits, "UpdateRequest.rate_limits");
  const keyId = requireKeyId(request.keyId);
  const changes: KeyChanges = {};
  if (request.name !== undefined) changes.name = requireName(request.name);
  if (request.scopes) changes.scopes = requireScopes(request.scopes.values, "scopes.values");
  if (request.metadata) changes.metadata = requireMetadata(request.metadata.entries, "metadata.entries");
  if (request.enabled !== undefined) changes.enabled = request.enabled;
  if (request.usageLimit && request.removeUsageLimit) {
    throw invalidArgument("remove_usage_limit", "cannot be set together with usage_limit");
  }
  if (request.usageLimit) changes.usageLimit = requireUsageLimit(request.usageLimit, "usage_limit");
  if (request.removeUsageLimit) changes.usageLimit = { ...NO_USAGE_LIMIT };
  if (request.rateLimits)
    changes.rate_limits = requireRateLimits(request.rateLimits.values, "rate_limits.values");
  if (request.tier !== undefined) changes.tier = requireTier(request.tier);
  if (request.owner !== undefined) changes.owner = requireOwner(request.owner);
  if (Object.keys(changes).length === 0) {
    throw invalidArgument(
      "UpdateRequest",
      "set at least one of name, scopes, metadata, enabled, usage_limit, remove_usage_limit, rate_limits, tier, owner",
    );
  }
  const row = await deps.db.transaction().execute(async (trx) => {
    const current = await lockKey(trx, principal, keyId);
    authorizeKeyWrite(principal, { kind: "update", key: current, changes });
    if (current.revoked_at)
      throw new ConnectError(`key ${keyId} is revoked and cannot change`, Code.FailedPrecondition);
    const updated = await updateKey(trx, keyId, {
      ...changes,
      ...(changes.enabled === undefined || changes.enabled === current.enabled
        ? {}
        : { disabled_by: changes.enabled ? null : principal.actor }),
    });
    const events: KeyEventType[] = [];
    if (changes.enabled !== undefined && changes.enabled !== current.enabled) {
      events.push(changes.enabled ? KeyEventType.ENABLED : KeyEventType.DISABLED);
    }
    if (changes.scopes && !sameSet(changes.scopes, current.scopes)) events.push(KeyEventType.SCOPES_CHANGED);
    if (
      (changes.name !== undefined && changes.name !== current.name) ||
      (changes.metadata && JSON.stringify(changes.metadata) !== JSON.stringify(current.metadata)) ||
      // Verifiers drop the key on this event and get its new limits with the next Verify.
      (changes.rate_limits && JSON.stringify(changes.rate_limits) !== JSON.stringify(current.rate_limits)) ||
      (changes.tier !== undefined && changes.tier !== current.tier) ||
      (changes.owner !== undefined && changes.owner !== current.owner)
    ) {
      events.push(KeyEventType.METADATA_CHANGED);
    }
    // Caches must drop the key: a limited key is never answered from a cache, an unlimited one may be.
    if (changes.usageLimit) events.push(KeyEventType.USAGE_LIMIT_CHANGED);
    for (const type of events) await enqueueKeyEvent(trx, type, updated);
    await recordAudit(trx, {
      actor: principal.actor,
      action: "key.update",
      teamId: updated.team_id,
      keyId,
      requestId: ctx.requestId,
      details: { fields: Object.keys(changes) },
    });
    return updated;
  });
  invalidateKeys(deps, [row]);
  deps.logger.info({ keyId, actor: principal.actor, requestId: ctx.requestId }, "key updated");
  return { key: keyFromRow(row) };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
