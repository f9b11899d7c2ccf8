import { Code, ConnectError } from "@connectrpc/connect";
import { missingScopes } from "@latchkey/token";
import type { ApiKeyRow } from "../db/tables.js";
import type { KeyChanges } from "../keys/key.repository.js";
import { type Principal, ROOT_ACTOR } from "./principal.js";

/**
 * A key write an admin RPC is about to make. `key` is the row as loaded and
 * locked in the write's transaction, already checked to be in the caller's
 * team (`lockKey`).
 */
export type KeyWrite =
  /** A new key holding `scopes`; its token goes to the caller. */
  | { readonly kind: "issue"; readonly scopes: readonly string[] }
  /** An existing key holding `scopes` brought in by ImportKeys. */
  | { readonly kind: "import"; readonly scopes: readonly string[] }
  /** A new key holding `key`'s scopes; its token goes to the caller. */
  | { readonly kind: "rotate"; readonly key: ApiKeyRow }
  /** `key` revoked for good. */
  | { readonly kind: "revoke"; readonly key: ApiKeyRow }
  /** `key` with `changes` applied. */
  | { readonly kind: "update"; readonly key: ApiKeyRow; readonly changes: KeyChanges };

/**
 * Decides whether `principal` may make `write`: the one rule every key write
 * handler calls, so that an admin key can never obtain or hand out more than
 * it holds.
 *
 * - The root key may make any write.
 * - An admin key may always reduce a key of its team: revoke it, disable it,
 *   remove scopes from it (a team can kill its own leaked key, however strong).
 * - Anything else (issue, import, rotate, re-enable, add scopes, rename, change
 *   metadata) needs the admin key to hold every scope the key holds after
 *   the write. Rotate counts even for a disabled key: it returns a token.
 * - A key the root key disabled is re-enabled by the root key only.
 * - A keychain's secret (`keychain_id` set) is not rotated nor updated here,
 *   by anyone: it holds no scopes and belongs to KeychainService (revoking it
 *   is a reduction, allowed as for any key). FAILED_PRECONDITION.
 *
 * Refusals are `PERMISSION_DENIED` naming the request field and the missing
 * scopes.
 *
 * @example
 * ```ts
 * const old = await lockKey(trx, principal, keyId);
 * authorizeKeyWrite(principal, { kind: "rotate", key: old });
 * ```
 */
export function authorizeKeyWrite(principal: Principal, write: KeyWrite): void {
  if ((write.kind === "rotate" || write.kind === "update") && write.key.keychain_id !== null) {
    throw new ConnectError(
      `key_id: key ${write.key.id} is the secret of keychain ${write.key.keychain_id}; manage it with KeychainService`,
      Code.FailedPrecondition,
    );
  }
  if (principal.kind === "root") return;
  if (write.kind === "update" && reEnables(write) && write.key.disabled_by === ROOT_ACTOR) {
    throw new ConnectError(
      `enabled: key ${write.key.id} was disabled by the root key; only the root key can re-enable it`,
      Code.PermissionDenied,
    );
  }
  const grant = grantOf(write);
  if (grant === undefined) return;
  const missing = missingScopes(principal.scopes, grant.scopes);
  if (missing.length > 0) {
    throw new ConnectError(`${grant.field}: ${grant.refusal}: ${missing.join(", ")}`, Code.PermissionDenied);
  }
}

/** What a write gives: the scopes the caller must hold, and the field that asks for it. */
interface Grant {
  readonly field: string;
  readonly scopes: readonly string[];
  readonly refusal: string;
}

const BEYOND_REDUCTION =
  "the key would hold scopes this admin key lacks, and an admin key may only revoke, disable or remove scopes of such a key";

/** The grant a write makes, or undefined for a pure reduction. */
function grantOf(write: KeyWrite): Grant | undefined {
  switch (write.kind) {
    case "issue":
      return {
        field: "scopes",
        scopes: write.scopes,
        refusal: "an admin key cannot grant scopes it lacks",
      };
    case "import":
      return {
        field: "scopes",
        scopes: write.scopes,
        refusal: "an admin key cannot import a key with scopes it lacks",
      };
    case "rotate":
      return {
        field: "key_id",
        scopes: write.key.scopes,
        refusal: "an admin key cannot rotate (and receive a token for) a key holding scopes it lacks",
      };
    case "revoke":
      return undefined;
    case "update": {
      const { key, changes } = write;
      const field = [
        changes.scopes !== undefined &&
          missingScopes(key.scopes, changes.scopes).length > 0 &&
          "scopes.values",
        reEnables(write) && "enabled",
        changes.name !== undefined && changes.name !== key.name && "name",
        changes.metadata !== undefined && !sameEntries(changes.metadata, key.metadata) && "metadata.entries",
        changes.usageLimit !== undefined &&
          !limitsUsage(key, changes.usageLimit) &&
          (changes.usageLimit.remaining === null ? "remove_usage_limit" : "usage_limit"),
        // Raising a limit is a grant too: only for keys within this admin key's scopes.
        changes.rate_limits !== undefined &&
          JSON.stringify(changes.rate_limits) !== JSON.stringify(key.rate_limits ?? []) &&
          "rate_limits.values",
        changes.tier !== undefined && changes.tier !== key.tier && "tier",
        // Who a key acts for decides which agent it may change at the edge: a grant like metadata.
        changes.owner !== undefined && changes.owner !== key.owner && "owner",
      ].find((each) => typeof each === "string");
      if (field === undefined) return undefined;
      return { field, scopes: changes.scopes ?? key.scopes, refusal: BEYOND_REDUCTION };
    }
  }
}

/**
 * Whether a usage limit only reduces what the key may do: any limit on an
 * unlimited key, or no more uses and no more generous a refill than it has.
 * Removing a limit, or raising one, is not a reduction.
 */
function limitsUsage(key: ApiKeyRow, limit: NonNullable<KeyChanges["usageLimit"]>): boolean {
  if (limit.remaining === null) return key.remaining === null;
  if (key.remaining === null) return true;
  if (limit.remaining > Number(key.remaining)) return false;
  if (limit.refill_interval === null) return true;
  return (
    limit.refill_interval === key.refill_interval && Number(limit.refill_amount) <= Number(key.refill_amount)
  );
}

function reEnables(write: { readonly key: ApiKeyRow; readonly changes: KeyChanges }): boolean {
  return write.changes.enabled === true && !write.key.enabled;
}

function sameEntries(a: Record<string, string>, b: Record<string, string> | null): boolean {
  const other = b ?? {};
  const keys = Object.keys(a);
  return keys.length === Object.keys(other).length && keys.every((k) => other[k] === a[k]);
}
