import type { ApiKeyRow } from "../db/tables.js";
import type { OutboxPublisher } from "../outbox/outbox-publisher.js";
import { type KeyRowCache, tokenHashHex } from "./key-row-cache.js";

/** What {@link invalidateKeys} acts on: this replica's row cache and its outbox publisher. */
export interface KeyInvalidationTarget {
  readonly cache: KeyRowCache;
  readonly publisher: Pick<OutboxPublisher, "wake">;
}

/**
 * The step after key changes have committed (an admin write, an expiry sweep):
 * drop each key from this replica's row cache at once, by id and by token
 * hash (other replicas hear of it through the key event), then wake the
 * publisher so the events written with the change leave now.
 *
 * @example
 * ```ts
 * const row = await deps.db.transaction().execute(async (trx) => revoke(trx));
 * invalidateKeys(deps, [row]);
 * ```
 */
export function invalidateKeys(
  target: KeyInvalidationTarget,
  keys: readonly Pick<ApiKeyRow, "id" | "token_hash">[],
): void {
  for (const key of keys) target.cache.invalidate(key.id, tokenHashHex(key.token_hash));
  target.publisher.wake();
}
