import { randomBytes } from "node:crypto";

/** The base62 alphabet used by Latchkey tokens: digits, upper case, lower case. */
export const BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * Encodes a non-negative integer as base62, left-padded with `0` to `width`.
 *
 * @example
 * ```ts
 * encodeBase62Fixed(61, 2); // "0z"
 * ```
 */
export function encodeBase62Fixed(value: number, width: number): string {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError("value must be a non-negative integer");
  let out = "";
  let rest = value;
  while (rest > 0) {
    out = BASE62_ALPHABET[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  if (out.length > width) throw new RangeError(`value does not fit in ${width} base62 digits`);
  return out.padStart(width, "0");
}

/**
 * Returns `length` characters drawn uniformly from the base62 alphabet using
 * the CSPRNG. Bytes at or above 248 (= 4 × 62) are rejected so that every
 * character is equally likely; each kept byte carries log2(62) ≈ 5.95 bits.
 *
 * @example
 * ```ts
 * randomBase62(43); // 43 characters, ≥ 256 bits of entropy
 * ```
 */
export function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    const bytes = randomBytes(Math.ceil((length - out.length) * 1.1) + 8);
    for (const byte of bytes) {
      if (byte >= 248) continue;
      out += BASE62_ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}
