import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  DeleteSecretRequest,
  DeleteSecretResponseSchema,
  ListSecretNamesRequest,
  ListSecretNamesResponseSchema,
  PutSecretRequest,
  PutSecretResponseSchema,
} from "@latchkey/proto";
import { recordAudit } from "../audit/audit.repository.js";
import { invalidateKeys } from "../keys/key-invalidation.js";
import { beginAdminCall } from "../rpc/admin-call.js";
import type { ServiceDeps } from "../rpc/service-deps.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import { sealSecret } from "./envelope.js";
import { deleteSecret, listSecrets, upsertSecret } from "./keychain.repository.js";
import {
  assertNotRevoked,
  recordKeychainChange,
  requireKeyring,
  visibleKeychain,
  withDataKey,
} from "./keychain-access.js";
import { secretInfoFromRow } from "./keychain-mapper.js";
import { requireKeychainId, requireSecretName, requireSecretValue } from "./keychain-validate.js";

/**
 * PutSecret: the value is encrypted with the keychain's data key (AES-256-GCM,
 * bound to the keychain and the name) before it reaches the database; a
 * KEYCHAIN_CHANGED event makes caches of resolved secrets drop theirs. The
 * value is never logged, audited or returned.
 */
export async function putSecret(
  deps: ServiceDeps,
  request: PutSecretRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof PutSecretResponseSchema>> {
  const keyring = requireKeyring(deps);
  const principal = await beginAdminCall(deps, ctx, request);
  const keychainId = requireKeychainId(request.keychainId);
  const name = requireSecretName(request.name);
  const value = requireSecretValue(request.value);
  const { stored, key, teamId } = await deps.db.transaction().execute(async (trx) => {
    const keychain = await visibleKeychain(trx, principal, keychainId, true);
    assertNotRevoked(keychain);
    const ciphertext = await withDataKey(keyring, keychain, (dataKey) =>
      sealSecret(dataKey, keychainId, name, value),
    );
    const result = await upsertSecret(trx, {
      keychain_id: keychainId,
      name,
      ciphertext,
      updated_by: principal.actor,
    });
    const key = await recordKeychainChange(trx, {
      keychain,
      principal,
      ctx,
      action: "keychain.secret.put",
      details: { name, replaced: result.replaced },
    });
    return { stored: result, key, teamId: keychain.team_id };
  });
  invalidateKeys(deps, [key]);
  deps.logger.info(
    { keychainId, name, teamId, actor: principal.actor, requestId: ctx.requestId },
    "keychain secret stored",
  );
  return { secret: secretInfoFromRow(stored.secret), replaced: stored.replaced };
}

/** ListSecretNames: names and times, never values. */
export async function listSecretNames(
  deps: ServiceDeps,
  request: ListSecretNamesRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof ListSecretNamesResponseSchema>> {
  requireKeyring(deps);
  const principal = await beginAdminCall(deps, ctx, request);
  const keychainId = requireKeychainId(request.keychainId);
  const keychain = await visibleKeychain(deps.db, principal, keychainId);
  const rows = await listSecrets(deps.db, keychainId);
  await recordAudit(deps.db, {
    actor: principal.actor,
    action: "keychain.secret.list",
    teamId: keychain.team_id,
    keyId: keychain.key_id,
    requestId: ctx.requestId,
    details: { keychainId, names: rows.map((row) => row.name) },
  });
  return { secrets: rows.map(secretInfoFromRow) };
}

/** DeleteSecret: removes one secret (allowed on a revoked keychain too); NOT_FOUND when absent. */
export async function removeSecret(
  deps: ServiceDeps,
  request: DeleteSecretRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof DeleteSecretResponseSchema>> {
  requireKeyring(deps);
  const principal = await beginAdminCall(deps, ctx, request);
  const keychainId = requireKeychainId(request.keychainId);
  const name = requireSecretName(request.name);
  const key = await deps.db.transaction().execute(async (trx) => {
    const keychain = await visibleKeychain(trx, principal, keychainId, true);
    if (!(await deleteSecret(trx, keychainId, name))) {
      throw new ConnectError(`keychain ${keychainId} stores no secret named ${name}`, Code.NotFound);
    }
    return recordKeychainChange(trx, {
      keychain,
      principal,
      ctx,
      action: "keychain.secret.delete",
      details: { name },
    });
  });
  invalidateKeys(deps, [key]);
  deps.logger.info(
    { keychainId, name, actor: principal.actor, requestId: ctx.requestId },
    "keychain secret deleted",
  );
  return {};
}
