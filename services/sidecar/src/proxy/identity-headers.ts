import type { VerifiedKey } from "../key-checker.js";
import { percentEncodeChar } from "../percent-encode.js";

const identityCache = new WeakMap<VerifiedKey, readonly string[]>();

/**
 * The identity headers for a verified key: `x-latchkey-key-id`, `-team-id`,
 * `-scopes` (space-separated), `-key-name`, `-environment`, `-owner` when
 * the key has one, and `-keychain-id` for a keychain's secret. Values are made header-safe:
 * anything outside printable ASCII, and `%`, is percent-encoded (UTF-8), so a
 * key name cannot inject a header or break the response. Cached per key object.
 */
export function identityHeaders(key: VerifiedKey): readonly string[] {
  let headers = identityCache.get(key);
  if (headers === undefined) {
    const list = [
      "x-latchkey-key-id",
      headerSafe(key.id),
      "x-latchkey-team-id",
      headerSafe(key.teamId),
      "x-latchkey-scopes",
      headerSafe(key.scopes.join(" ")),
      "x-latchkey-key-name",
      headerSafe(key.name),
      "x-latchkey-environment",
      headerSafe(key.environment),
    ];
    if (key.owner !== undefined) list.push("x-latchkey-owner", headerSafe(key.owner));
    if (key.keychainId !== undefined) list.push("x-latchkey-keychain-id", headerSafe(key.keychainId));
    headers = list;
    identityCache.set(key, headers);
  }
  return headers;
}

/** Printable ASCII stays; everything else (controls, non-ASCII, `%`) is percent-encoded as UTF-8. */
export function headerSafe(value: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(value)) return value;
  let out = "";
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    out += code >= 0x20 && code <= 0x7e && code !== 0x25 ? char : percentEncodeChar(char);
  }
  return out;
}
