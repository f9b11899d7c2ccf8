import { Code, ConnectError } from "@connectrpc/connect";
import { KeyEventType } from "@latchkey/proto";
import type { Transaction } from "kysely";
import { recordAudit } from "../audit/audit.repository.js";
import type { Principal } from "../auth/principal.js";
import type { ApiKeyRow, Database } from "../db/tables.js";
import { findKeyById } from "../keys/key.repository.js";
import { enqueueKeyEvent } from "../outbox/outbox.repository.js";
import type { ServiceDeps } from "../rpc/service-deps.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import { unwrapDataKey } from "./envelope.js";
import { findKeychain, type KeychainView } from "./keychain.repository.js";
import { MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, type MasterKeyring } from "./master-keyring.js";

type Db = Parameters<typeof findKeychain>[0];

/**
 * The master keyring, or FAILED_PRECONDITION naming the settings: the first
 * step of every keychain RPC, so a deployment without a master key stores and
 * releases nothing.
 */
export function requireKeyring(deps: Pick<ServiceDeps, "keychainKeyring">): MasterKeyring {
  const keyring = deps.keychainKeyring;
  if (keyring === undefined) {
    throw new ConnectError(
      `keychains are off: no master key is configured (set ${MASTER_KEY_ENV} or ${MASTER_KEY_FILE_ENV})`,
      Code.FailedPrecondition,
    );
  }
  return keyring;
}

/** NOT_FOUND for a keychain that is absent or of a team the caller may not see. */
function keychainNotFound(id: string): ConnectError {
  return new ConnectError(`keychain ${id} not found`, Code.NotFound);
}

/**
 * A keychain the caller may manage: the root key any, an admin key its own
 * team's (others are NOT_FOUND, as for keys). `forUpdate` locks it for the
 * transaction, so concurrent changes to one keychain are serialized.
 */
export async function visibleKeychain(
  db: Db,
  principal: Principal,
  id: string,
  forUpdate = false,
): Promise<KeychainView> {
  const keychain = await findKeychain(db, id, forUpdate);
  if (keychain === undefined || (principal.kind === "admin" && principal.teamId !== keychain.team_id)) {
    throw keychainNotFound(id);
  }
  return keychain;
}

/** FAILED_PRECONDITION for adding to a revoked keychain (removing from one is allowed). */
export function assertNotRevoked(keychain: KeychainView): void {
  if (keychain.revoked_at !== null) {
    throw new ConnectError(`keychain ${keychain.id} is revoked and cannot change`, Code.FailedPrecondition);
  }
}

/** The keychain's key row, locked, for the event a change writes. */
export async function lockKeychainKey(
  trx: Transaction<Database>,
  keychain: KeychainView,
): Promise<ApiKeyRow> {
  const row = await findKeyById(trx, keychain.key_id, true);
  if (row === undefined) throw new Error(`keychain ${keychain.id} has no key row`);
  return row;
}

/**
 * The end of every change to a keychain's secrets or grants, in its transaction: a
 * KEYCHAIN_CHANGED event for its key (caches of resolved secrets drop theirs) and the audit
 * entry. Returns the key row, for `invalidateKeys` after the commit.
 */
export async function recordKeychainChange(
  trx: Transaction<Database>,
  change: {
    readonly keychain: KeychainView;
    readonly principal: Principal;
    readonly ctx: RpcContext;
    readonly action: string;
    readonly details: Record<string, unknown>;
  },
): Promise<ApiKeyRow> {
  const { keychain } = change;
  const key = await lockKeychainKey(trx, keychain);
  await enqueueKeyEvent(trx, KeyEventType.KEYCHAIN_CHANGED, key);
  await recordAudit(trx, {
    actor: change.principal.actor,
    action: change.action,
    teamId: keychain.team_id,
    keyId: keychain.key_id,
    requestId: change.ctx.requestId,
    details: { keychainId: keychain.id, ...change.details },
  });
  return key;
}

/** Why a keychain's data key could not be had. */
export type DataKeyFailure = "unknown_master_key" | "authentication";

/**
 * Unwraps a keychain's data key, runs `use` with it, and wipes it. A data key
 * wrapped by a master key that is no longer configured is FAILED_PRECONDITION
 * naming the setting; one that fails authentication (altered, or other key
 * material under the same id) is DATA_LOSS. `onFailure` hears of either first
 * (for the audit log).
 */
export async function withDataKey<T>(
  keyring: MasterKeyring,
  keychain: Pick<KeychainView, "id" | "master_key_id" | "wrapped_data_key">,
  use: (dataKey: Buffer) => T | Promise<T>,
  onFailure?: (failure: DataKeyFailure) => Promise<void>,
): Promise<T> {
  const master = keyring.key(keychain.master_key_id);
  if (master === undefined) {
    await onFailure?.("unknown_master_key");
    throw new ConnectError(
      `keychain ${keychain.id}: its data key is wrapped by master key ${JSON.stringify(keychain.master_key_id)}, ` +
        `which ${MASTER_KEY_ENV} (or ${MASTER_KEY_FILE_ENV}) does not hold; configure it again, then run keychain-rewrap`,
      Code.FailedPrecondition,
    );
  }
  const opened = unwrapDataKey(master, keychain.id, keychain.master_key_id, keychain.wrapped_data_key);
  if (!opened.ok) {
    await onFailure?.("authentication");
    throw new ConnectError(
      `keychain ${keychain.id}: its data key failed authentication (the stored key was altered, or master key ` +
        `${JSON.stringify(keychain.master_key_id)} has other material than it was wrapped with)`,
      Code.DataLoss,
    );
  }
  try {
    return await use(opened.plaintext);
  } finally {
    opened.plaintext.fill(0);
  }
}
