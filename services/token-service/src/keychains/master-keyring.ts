import { readFileSync } from "node:fs";
import { ConfigError } from "@latchkey/config";

/** The environment variable holding the master keys inline. */
export const MASTER_KEY_ENV = "LATCHKEY_KEYCHAIN_MASTER_KEY";
/** The environment variable naming a file of master keys (a mounted Secret). */
export const MASTER_KEY_FILE_ENV = "LATCHKEY_KEYCHAIN_MASTER_KEY_FILE";

const KID = /^[A-Za-z0-9._-]{1,32}$/;
const MAX_KEYS = 16;
const MAX_FILE_BYTES = 64 * 1024;

/**
 * The master keys that wrap keychains' data keys, by id. The first configured
 * key is active (it wraps new data keys and is what `keychain-rewrap` moves
 * every data key to); the others only unwrap, so a master key rotates without
 * downtime.
 */
export interface MasterKeyring {
  /** The id of the key that wraps new data keys. */
  readonly activeId: string;
  /** Every configured id, the active one first. */
  readonly ids: readonly string[];
  /** The 32 bytes of a key, or undefined when it is not configured. */
  key(id: string): Buffer | undefined;
}

/**
 * Parses master keys written as `<id>:<32 bytes in base64 or base64url>`,
 * separated by commas or line breaks (a file may hold `#` comments); the first
 * is active. Errors name `setting` and never quote key material.
 *
 * @example
 * ```ts
 * const ring = parseMasterKeyring("2026-12:" + randomBytes(32).toString("base64"), MASTER_KEY_ENV);
 * ring.activeId; // "2026-12"
 * ```
 * @throws ConfigError naming `setting`.
 */
export function parseMasterKeyring(text: string, setting: string): MasterKeyring {
  const fail = (problem: string) => new ConfigError(`${setting}: ${problem}`, [setting]);
  const entries = text
    .split(/[,\n]/)
    .map((line) => line.replace(/#.*$/, "").trim())
    .filter((line) => line !== "");
  if (entries.length === 0) throw fail("holds no master key (write <id>:<32 bytes base64>)");
  if (entries.length > MAX_KEYS) throw fail(`holds more than ${MAX_KEYS} master keys`);
  const keys = new Map<string, Buffer>();
  entries.forEach((entry, index) => {
    const colon = entry.indexOf(":");
    const id = colon === -1 ? "" : entry.slice(0, colon);
    if (!KID.test(id)) {
      throw fail(`entry ${index + 1} must be <id>:<key> with an id of 1–32 of A-Z a-z 0-9 . _ -`);
    }
    if (keys.has(id)) throw fail(`master key id ${JSON.stringify(id)} is given twice`);
    const material = decodeKey(entry.slice(colon + 1));
    if (material === undefined) {
      throw fail(
        `master key ${JSON.stringify(id)} must be exactly 32 bytes in base64 or base64url (openssl rand -base64 32)`,
      );
    }
    keys.set(id, material);
  });
  const ids = [...keys.keys()];
  return Object.freeze({
    activeId: ids[0] as string,
    ids: Object.freeze(ids),
    key: (id: string) => keys.get(id),
  });
}

/** 32 bytes from canonical base64 or base64url (padding optional), else undefined. */
function decodeKey(text: string): Buffer | undefined {
  const value = text.trim();
  if (!/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(value)) return undefined;
  const url = value.replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  const bytes = Buffer.from(url, "base64url");
  // Re-encoding must give the same text: no stray bits in the last character.
  return bytes.length === 32 && bytes.toString("base64url") === url ? bytes : undefined;
}

/**
 * The master keyring from the inline setting or the key file, or undefined
 * when neither is set (keychain RPCs then answer FAILED_PRECONDITION).
 *
 * @throws ConfigError naming the setting at fault: both set, an unreadable
 *   file, a malformed key.
 */
export function loadMasterKeyring(settings: {
  readonly keychainMasterKey?: string | undefined;
  readonly keychainMasterKeyFile?: string | undefined;
}): MasterKeyring | undefined {
  const { keychainMasterKey: inline, keychainMasterKeyFile: file } = settings;
  if (inline !== undefined && file !== undefined) {
    throw new ConfigError(`${MASTER_KEY_ENV} and ${MASTER_KEY_FILE_ENV}: set one of them, not both`, [
      MASTER_KEY_ENV,
      MASTER_KEY_FILE_ENV,
    ]);
  }
  if (inline !== undefined) return parseMasterKeyring(inline, MASTER_KEY_ENV);
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(
      `${MASTER_KEY_FILE_ENV}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? "error"}`,
      [MASTER_KEY_FILE_ENV],
    );
  }
  if (text.length > MAX_FILE_BYTES) {
    throw new ConfigError(`${MASTER_KEY_FILE_ENV}: ${file} is larger than 64 KiB`, [MASTER_KEY_FILE_ENV]);
  }
  return parseMasterKeyring(text, MASTER_KEY_FILE_ENV);
}
