import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

// Envelope encryption with node:crypto's AES-256-GCM and nothing else: a data key per keychain
// encrypts its secrets; a master key wraps the data key. Each sealed value is
//   version (1 byte, 0x01) || nonce (12 random bytes) || ciphertext || tag (16 bytes)
// and is bound by its additional data to where it belongs: a wrapped data key to its keychain and
// master key id, a secret to its keychain and name. A value moved to another row (another
// keychain, another name) fails authentication like an altered one.

const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const HEADER_BYTES = 1 + NONCE_BYTES;

/** Why a sealed value could not be opened. */
export type OpenFailure = "malformed" | "authentication";

/** A sealed value opened, or why not: never a throw, never partial plaintext. */
export type Opened =
  | { readonly ok: true; readonly plaintext: Buffer }
  | { readonly ok: false; readonly reason: OpenFailure };

function seal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.of(VERSION), nonce, body, cipher.getAuthTag()]);
}

function open(key: Buffer, sealed: Uint8Array, aad: string): Opened {
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (bytes.length < HEADER_BYTES + TAG_BYTES || bytes[0] !== VERSION)
    return { ok: false, reason: "malformed" };
  const nonce = bytes.subarray(1, HEADER_BYTES);
  const tag = bytes.subarray(bytes.length - TAG_BYTES);
  const decipher = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, "utf8"));
  decipher.setAuthTag(tag);
  const plaintext = decipher.update(bytes.subarray(HEADER_BYTES, bytes.length - TAG_BYTES));
  try {
    // GCM releases nothing until the tag checks: on failure the partial output is wiped, not returned.
    const rest = decipher.final();
    return { ok: true, plaintext: rest.length === 0 ? plaintext : Buffer.concat([plaintext, rest]) };
  } catch {
    plaintext.fill(0);
    return { ok: false, reason: "authentication" };
  }
}

function dataKeyAad(keychainId: string, masterKeyId: string): string {
  return `latchkey/keychain/data-key/v1\0${keychainId}\0${masterKeyId}`;
}

function secretAad(keychainId: string, name: string): string {
  return `latchkey/keychain/secret/v1\0${keychainId}\0${name}`;
}

/**
 * A fresh random data key for a keychain, and its wrapping under a master key.
 * The caller stores `wrapped` with `masterKeyId` and wipes `dataKey` after use.
 *
 * @example
 * ```ts
 * const { dataKey, wrapped } = newDataKey(master, "kc_…", "2026-12");
 * ```
 */
export function newDataKey(
  masterKey: Buffer,
  keychainId: string,
  masterKeyId: string,
): { dataKey: Buffer; wrapped: Buffer } {
  const dataKey = randomBytes(KEY_BYTES);
  return { dataKey, wrapped: wrapDataKey(masterKey, keychainId, masterKeyId, dataKey) };
}

/** Wraps a data key under a master key (a new key, or a re-wrap under the active one). */
export function wrapDataKey(
  masterKey: Buffer,
  keychainId: string,
  masterKeyId: string,
  dataKey: Buffer,
): Buffer {
  return seal(masterKey, dataKey, dataKeyAad(keychainId, masterKeyId));
}

/** Unwraps a keychain's data key; an altered or misplaced wrapping fails authentication. */
export function unwrapDataKey(
  masterKey: Buffer,
  keychainId: string,
  masterKeyId: string,
  wrapped: Uint8Array,
): Opened {
  const opened = open(masterKey, wrapped, dataKeyAad(keychainId, masterKeyId));
  if (opened.ok && opened.plaintext.length !== KEY_BYTES) {
    opened.plaintext.fill(0);
    return { ok: false, reason: "malformed" };
  }
  return opened;
}

/** Encrypts one secret's value under its keychain's data key, bound to the keychain and name. */
export function sealSecret(dataKey: Buffer, keychainId: string, name: string, value: string): Buffer {
  const plaintext = Buffer.from(value, "utf8");
  try {
    return seal(dataKey, plaintext, secretAad(keychainId, name));
  } finally {
    plaintext.fill(0);
  }
}

/** Decrypts one secret; an altered ciphertext, or one moved from another name or keychain, fails. */
export function openSecret(dataKey: Buffer, keychainId: string, name: string, sealed: Uint8Array): Opened {
  return open(dataKey, sealed, secretAad(keychainId, name));
}
