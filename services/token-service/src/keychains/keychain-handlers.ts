import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  CreateKeychainRequest,
  CreateKeychainResponseSchema,
  ListKeychainsRequest,
  ListKeychainsResponseSchema,
  RevokeKeychainRequest,
  RevokeKeychainResponseSchema,
} from "@latchkey/proto";
import { recordAudit } from "../audit/audit.repository.js";
import { assertTeamAccess } from "../auth/admin-authenticator.js";
import { newKeychainId, newKeyId } from "../ids.js";
import { insertKey } from "../keys/key.repository.js";
import { chooseKeyFormat, newTokenFor } from "../keys/key-format-choice.js";
import { beginAdminCall, requestedTeam } from "../rpc/admin-call.js";
import { newKeyRow, revokeKeyRow } from "../rpc/key-write-handlers.js";
import { decodePageToken, pageOf } from "../rpc/page-token.js";
import { announceRevocation, waitTimeoutMs } from "../rpc/revocation-announcement.js";
import type { ServiceDeps } from "../rpc/service-deps.js";
import { optionalText, pageSize, requireName, requireTeamId } from "../rpc/validate.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import { findTeam } from "../teams/team.repository.js";
import { NO_USAGE_LIMIT } from "../usage/usage-limit.js";
import { newDataKey } from "./envelope.js";
import { deleteAllSecrets, findKeychain, insertKeychain, listKeychains } from "./keychain.repository.js";
import { lockKeychainKey, requireKeyring, visibleKeychain } from "./keychain-access.js";
import { keychainFromView } from "./keychain-mapper.js";
import { requireKeychainId } from "./keychain-validate.js";

/**
 * CreateKeychain: the keychain, its secret (a key of kind keychain: no scopes,
 * `keychain_id` set, in the team's key format) and its data key, wrapped by
 * the active master key. The secret is in the response and nowhere else.
 */
export async function createKeychain(
  deps: ServiceDeps,
  request: CreateKeychainRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof CreateKeychainResponseSchema>> {
  const keyring = requireKeyring(deps);
  const principal = await beginAdminCall(deps, ctx, request);
  const teamId = requireTeamId(request.teamId);
  assertTeamAccess(principal, teamId);
  const name = requireName(request.name);
  let secret = "";
  const id = await deps.db.transaction().execute(async (trx) => {
    const team = await findTeam(trx, teamId);
    if (!team) throw new ConnectError(`team ${teamId} not found`, Code.NotFound);
    const keychainId = newKeychainId();
    const keyId = newKeyId();
    const made = newTokenFor(deps, chooseKeyFormat(deps, "", team.key_format), {
      id: keyId,
      teamId,
      scopes: [],
      environment: "live",
      expiresAt: null,
    });
    secret = made.token;
    await insertKey(
      trx,
      newKeyRow(
        { ...made, id: keyId },
        {
          team_id: teamId,
          name,
          scopes: [],
          environment: "live",
          created_at: new Date(),
          created_by: principal.actor,
          expires_at: null,
          enabled: true,
          disabled_by: null,
          metadata: {},
          rotated_from: null,
          ...NO_USAGE_LIMIT,
          rate_limits: [],
          tier: null,
          owner: null,
          keychain_id: keychainId,
        },
      ),
    );
    const master = keyring.key(keyring.activeId) as Buffer;
    const { dataKey, wrapped } = newDataKey(master, keychainId, keyring.activeId);
    dataKey.fill(0);
    await insertKeychain(trx, {
      id: keychainId,
      team_id: teamId,
      name,
      key_id: keyId,
      master_key_id: keyring.activeId,
      wrapped_data_key: wrapped,
      created_by: principal.actor,
    });
    await recordAudit(trx, {
      actor: principal.actor,
      action: "keychain.create",
      teamId,
      keyId,
      requestId: ctx.requestId,
      details: { keychainId, name },
    });
    return keychainId;
  });
  const keychain = await findKeychain(deps.db, id);
  if (keychain === undefined) throw new Error(`keychain ${id} vanished after its creation`);
  deps.logger.info(
    { keychainId: id, keyId: keychain.key_id, teamId, actor: principal.actor, requestId: ctx.requestId },
    "keychain created",
  );
  return { keychain: keychainFromView(keychain), secret };
}

/** ListKeychains: a team's keychains, newest first, paged. */
export async function listTeamKeychains(
  deps: ServiceDeps,
  request: ListKeychainsRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof ListKeychainsResponseSchema>> {
  requireKeyring(deps);
  const principal = await beginAdminCall(deps, ctx, request);
  const teamId = requestedTeam(principal, request.teamId);
  const limit = pageSize(request.pageSize);
  const rows = await listKeychains(deps.db, {
    teamId,
    limit,
    after: decodePageToken(request.pageToken),
    includeRevoked: request.includeRevoked,
  });
  const { page, nextPageToken } = pageOf(rows, limit);
  await recordAudit(deps.db, {
    actor: principal.actor,
    action: "keychain.list",
    teamId,
    requestId: ctx.requestId,
    details: { keychainIds: page.map((row) => row.id) },
  });
  return { keychains: page.map(keychainFromView), nextPageToken };
}

/**
 * RevokeKeychain: its key is revoked (a REVOKED key event through the outbox,
 * so verifiers, sidecars, replicas and `@latchkey/keychain` caches drop it)
 * and its stored secrets are deleted in the same transaction. A keychain
 * whose key was revoked already (by Revoke) still has its secrets deleted.
 */
export async function revokeKeychain(
  deps: ServiceDeps,
  request: RevokeKeychainRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof RevokeKeychainResponseSchema>> {
  requireKeyring(deps);
  const principal = await beginAdminCall(deps, ctx, request);
  const keychainId = requireKeychainId(request.keychainId);
  const reason = optionalText(request.reason, "reason", 500);
  const waitMs = waitTimeoutMs(request.waitTimeout);
  const { key, eventId } = await deps.db.transaction().execute(async (trx) => {
    const keychain = await visibleKeychain(trx, principal, keychainId, true);
    const revoked = await revokeKeyRow(trx, await lockKeychainKey(trx, keychain), reason);
    const secretsDeleted = await deleteAllSecrets(trx, keychainId);
    if (revoked.eventId !== undefined || secretsDeleted > 0) {
      await recordAudit(trx, {
        actor: principal.actor,
        action: "keychain.revoke",
        teamId: keychain.team_id,
        keyId: keychain.key_id,
        requestId: ctx.requestId,
        details: { keychainId, secretsDeleted, ...(reason ? { reason } : {}) },
      });
    }
    return { key: revoked.row, eventId: revoked.eventId };
  });
  const propagation = await announceRevocation(deps, key, eventId, {
    requested: request.waitTimeout !== undefined,
    ms: waitMs,
  });
  deps.logger.info(
    { keychainId, keyId: key.id, teamId: key.team_id, actor: principal.actor, requestId: ctx.requestId },
    "keychain revoked",
  );
  const keychain = await findKeychain(deps.db, keychainId);
  if (keychain === undefined) throw new Error(`keychain ${keychainId} vanished after its revocation`);
  return { keychain: keychainFromView(keychain), ...(propagation ? { propagation } : {}) };
}
