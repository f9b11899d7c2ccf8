import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { recordAudits } from "../audit/audit.repository.js";
import { ROOT_ACTOR } from "../auth/principal.js";
import type { Database } from "../db/tables.js";
import { unwrapDataKey, wrapDataKey } from "./envelope.js";
import { lockKeychainsToRewrap, rewrapKeychain } from "./keychain.repository.js";
import type { MasterKeyring } from "./master-keyring.js";

/** Options of {@link rewrapKeychains}. */
export interface RewrapOptions {
  readonly db: Kysely<Database>;
  readonly keyring: MasterKeyring;
  readonly logger: Logger;
  /** Keychains per transaction (default 100). */
  readonly batchSize?: number;
}

/** What a re-wrap did. */
export interface RewrapReport {
  /** Keychains whose data key is now wrapped by the active master key. */
  readonly rewrapped: number;
  /** Keychains left as they were: their master key is not configured, or their wrapping failed authentication. */
  readonly failed: readonly {
    readonly keychainId: string;
    readonly reason: "unknown_master_key" | "authentication";
  }[];
}

/**
 * Moves every keychain's data key to the active master key: unwrap with the
 * key it names, wrap with the active one, in batches of one transaction each
 * (rows locked `FOR UPDATE SKIP LOCKED`, so two runs share the work and a
 * running service keeps serving: it unwraps with whichever key a row names).
 * The secrets themselves are not touched: only the data key's wrapping
 * changes. Once it reports no failure, the old master key can be removed from
 * the configuration. Each keychain moved is audited (`keychain.rewrap`).
 *
 * @example
 * ```ts
 * const report = await rewrapKeychains({ db, keyring, logger });
 * if (report.failed.length === 0) logger.info("the old master key may go");
 * ```
 */
export async function rewrapKeychains(options: RewrapOptions): Promise<RewrapReport> {
  const { db, keyring, logger } = options;
  const batchSize = options.batchSize ?? 100;
  const activeId = keyring.activeId;
  const active = keyring.key(activeId) as Buffer;
  const failed: { keychainId: string; reason: "unknown_master_key" | "authentication" }[] = [];
  let rewrapped = 0;
  let after = "";
  for (;;) {
    const batch = await db.transaction().execute(async (trx) => {
      const rows = await lockKeychainsToRewrap(trx, activeId, after, batchSize);
      const moved: { id: string; team_id: string; from: string }[] = [];
      for (const row of rows) {
        const master = keyring.key(row.master_key_id);
        if (master === undefined) {
          failed.push({ keychainId: row.id, reason: "unknown_master_key" });
          continue;
        }
        const opened = unwrapDataKey(master, row.id, row.master_key_id, row.wrapped_data_key);
        if (!opened.ok) {
          failed.push({ keychainId: row.id, reason: "authentication" });
          continue;
        }
        const wrapped = wrapDataKey(active, row.id, activeId, opened.plaintext);
        opened.plaintext.fill(0);
        await rewrapKeychain(trx, row.id, { master_key_id: activeId, wrapped_data_key: wrapped });
        moved.push({ id: row.id, team_id: row.team_id, from: row.master_key_id });
      }
      await recordAudits(
        trx,
        moved.map((each) => ({
          actor: ROOT_ACTOR,
          action: "keychain.rewrap",
          teamId: each.team_id,
          details: { keychainId: each.id, from: each.from, to: activeId },
        })),
      );
      return { seen: rows.length, last: rows.at(-1)?.id, moved: moved.length };
    });
    rewrapped += batch.moved;
    if (batch.last === undefined || batch.seen < batchSize) break;
    after = batch.last;
  }
  for (const each of failed) logger.error(each, "keychain data key not re-wrapped");
  logger.info({ rewrapped, failed: failed.length, activeMasterKey: activeId }, "keychain re-wrap done");
  return { rewrapped, failed };
}
