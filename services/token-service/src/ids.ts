import { randomBase62 } from "@latchkey/token";

// 22 base62 characters ≈ 131 bits: collision-free without coordination.
const ID_BODY = 22;
const KEY_ID = /^key_[0-9A-Za-z]{22}$/;
const TEAM_ID = /^team_[0-9A-Za-z]{22}$/;

/** A new key id, `key_…`. */
export function newKeyId(): string {
  return `key_${randomBase62(ID_BODY)}`;
}

/** A new team id, `team_…`. */
export function newTeamId(): string {
  return `team_${randomBase62(ID_BODY)}`;
}

/** True when `value` has the shape of a key id. */
export function isKeyId(value: string): boolean {
  return KEY_ID.test(value);
}

/** True when `value` has the shape of a team id. */
export function isTeamId(value: string): boolean {
  return TEAM_ID.test(value);
}

const KEYCHAIN_ID = /^kc_[0-9A-Za-z]{22}$/;

/** A new keychain id, `kc_…`. */
export function newKeychainId(): string {
  return `kc_${randomBase62(ID_BODY)}`;
}

/** True when `value` has the shape of a keychain id. */
export function isKeychainId(value: string): boolean {
  return KEYCHAIN_ID.test(value);
}
