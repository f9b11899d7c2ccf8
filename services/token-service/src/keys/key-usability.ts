import type { ApiKeyRow } from "../db/tables.js";

/** Why a key may not be used, in the order they are checked. */
export type KeyUnusableReason = "revoked" | "disabled" | "expired";

/** Whether a key may be used now: a closed set of outcomes, never a throw. */
export type KeyUsability =
  | { readonly usable: true }
  | { readonly usable: false; readonly reason: KeyUnusableReason };

/** Options of {@link keyUsability}. */
export interface KeyUsabilityOptions {
  /**
   * Count a disabled key as usable. Rotate only: it may replace a disabled
   * key (the replacement stays disabled), but not a revoked or expired one.
   */
  readonly allowDisabled?: boolean;
}

// Preallocated, so Verify's cache hit allocates nothing here.
const USABLE: KeyUsability = Object.freeze({ usable: true });
const REVOKED: KeyUsability = Object.freeze({ usable: false, reason: "revoked" });
const DISABLED: KeyUsability = Object.freeze({ usable: false, reason: "disabled" });
const EXPIRED: KeyUsability = Object.freeze({ usable: false, reason: "expired" });

/**
 * The one rule for "this key is usable": not revoked, enabled, and not expired
 * at `nowMs` (a key expires at its `expires_at`). Verify, the admin
 * authenticator and Rotate all ask it, so they cannot drift apart. When more
 * than one reason applies, the first of revoked, disabled, expired is given.
 *
 * @example
 * ```ts
 * const usability = keyUsability(row, Date.now());
 * if (!usability.usable) return refuse(usability.reason);
 * ```
 */
export function keyUsability(
  row: Pick<ApiKeyRow, "revoked_at" | "enabled" | "expires_at">,
  nowMs: number,
  options?: KeyUsabilityOptions,
): KeyUsability {
  if (row.revoked_at) return REVOKED;
  if (!row.enabled && options?.allowDisabled !== true) return DISABLED;
  if (row.expires_at && row.expires_at.getTime() <= nowMs) return EXPIRED;
  return USABLE;
}
