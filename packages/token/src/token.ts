import * as crypto from "node:crypto";
import { crc32 } from "node:zlib";
import { encodeBase62Fixed, randomBase62 } from "./base62.js";

/** Environments a key can belong to; the environment is part of the token. */
export type KeyEnvironment = "live" | "test";

/** Base62 characters of CSPRNG secret: 62^43 > 2^256, so at least 256 bits. */
export const SECRET_LENGTH = 43;
/** Base62 characters of CRC32 checksum: 62^6 > 2^32, so any CRC32 fits. */
export const CHECKSUM_LENGTH = 6;
/** Longest token the parser accepts before looking inside it. */
export const MAX_TOKEN_LENGTH = 512;

const PREFIX_SOURCE = "[a-z][a-z0-9]{0,15}";
const BODY_LENGTH = SECRET_LENGTH + CHECKSUM_LENGTH;

/**
 * The shape of a Latchkey token, for secret scanners (GitHub push protection,
 * trufflehog, gitleaks). Combined with the checksum ({@link findTokens}) it has
 * no false positives in practice: a random match passes the CRC32 with
 * probability 2^-32.
 *
 * @example
 * ```ts
 * TOKEN_PATTERN.test("lk_live_…"); // shape only; use parseToken for the checksum
 * ```
 */
export const TOKEN_PATTERN: RegExp = new RegExp(
  `(?<![A-Za-z0-9_])${PREFIX_SOURCE}_(?:live|test)_[0-9A-Za-z]{${BODY_LENGTH}}(?![A-Za-z0-9_])`,
);

const EXACT = new RegExp(
  `^(${PREFIX_SOURCE})_(live|test)_([0-9A-Za-z]{${SECRET_LENGTH}})([0-9A-Za-z]{${CHECKSUM_LENGTH}})$`,
);
const PREFIX_EXACT = new RegExp(`^${PREFIX_SOURCE}$`);

/** A token that passed every local check. */
export interface ParsedToken {
  readonly prefix: string;
  readonly environment: KeyEnvironment;
  readonly token: string;
}

/** Why a token was rejected locally, without any lookup. */
export type MalformedReason = "empty" | "too_long" | "shape" | "prefix" | "checksum";

/** Outcome of {@link parseToken}: a discriminated union, never a throw. */
export type ParseOutcome = { ok: true; value: ParsedToken } | { ok: false; reason: MalformedReason };

/**
 * Returns true when `prefix` is a valid key prefix: a lower-case letter then up
 * to 15 lower-case letters or digits.
 *
 * @example
 * ```ts
 * isValidPrefix("lk"); // true
 * isValidPrefix("LK_"); // false
 * ```
 */
export function isValidPrefix(prefix: string): boolean {
  return PREFIX_EXACT.test(prefix);
}

function checksumOf(head: string): string {
  return encodeBase62Fixed(crc32(head), CHECKSUM_LENGTH);
}

/**
 * Generates a new token. The caller stores {@link hashToken} of it and hands
 * the plaintext out exactly once.
 *
 * @example
 * ```ts
 * const token = generateToken({ prefix: "lk", environment: "live" });
 * // "lk_live_<43 base62 secret><6 base62 checksum>"
 * ```
 */
export function generateToken(options: { prefix: string; environment: KeyEnvironment }): string {
  if (!isValidPrefix(options.prefix))
    throw new RangeError(`invalid key prefix ${JSON.stringify(options.prefix)}`);
  if (options.environment !== "live" && options.environment !== "test") {
    throw new RangeError("environment must be live or test");
  }
  const head = `${options.prefix}_${options.environment}_${randomBase62(SECRET_LENGTH)}`;
  return head + checksumOf(head);
}

/**
 * Checks a token's shape and checksum with no I/O. A typo or a random string
 * is rejected here, before any cache or database sees it.
 *
 * @param expectedPrefix when given, a token with another prefix is `prefix`-malformed.
 * @example
 * ```ts
 * const outcome = parseToken(input, "lk");
 * if (!outcome.ok) return { result: "MALFORMED", reason: outcome.reason };
 * ```
 */
export function parseToken(token: string, expectedPrefix?: string): ParseOutcome {
  if (token.length === 0) return { ok: false, reason: "empty" };
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: "too_long" };
  const match = EXACT.exec(token);
  if (!match) return { ok: false, reason: "shape" };
  const [, prefix = "", environment, secret = "", checksum = ""] = match;
  if (expectedPrefix !== undefined && prefix !== expectedPrefix) return { ok: false, reason: "prefix" };
  const head = `${prefix}_${environment}_${secret}`;
  if (checksumOf(head) !== checksum) return { ok: false, reason: "checksum" };
  return { ok: true, value: { prefix, environment: environment as KeyEnvironment, token } };
}

// `crypto.hash` (Node 20.12+) digests a short string without building a Hash
// object; the fallback keeps older Node 20 releases working.
const oneShot = (
  crypto as { hash?: (algorithm: string, data: string, encoding: "base64" | "buffer") => unknown }
).hash;

/**
 * SHA-256 of the whole token: the only form in which a key is stored, cached
 * or sent between processes.
 *
 * @example
 * ```ts
 * const hash = hashToken(token); // 32-byte Buffer
 * ```
 */
export function hashToken(token: string): Buffer {
  return oneShot !== undefined
    ? (oneShot("sha256", token, "buffer") as Buffer)
    : crypto.createHash("sha256").update(token, "utf8").digest();
}

/**
 * {@link hashToken} as base64, the form caches key entries by.
 *
 * @example
 * ```ts
 * hashTokenBase64(token) === hashToken(token).toString("base64"); // true
 * ```
 */
export function hashTokenBase64(token: string): string {
  return oneShot !== undefined
    ? (oneShot("sha256", token, "base64") as string)
    : crypto.createHash("sha256").update(token, "utf8").digest("base64");
}

/**
 * A display hint that identifies a key to a person without revealing it:
 * prefix, environment and the last four characters.
 *
 * @example
 * ```ts
 * tokenHint("lk_live_abc…wxyz"); // "lk_live_…wxyz"
 * ```
 */
export function tokenHint(token: string): string {
  const parsed = parseToken(token);
  if (!parsed.ok) return "…";
  return `${parsed.value.prefix}_${parsed.value.environment}_…${token.slice(-4)}`;
}

/**
 * Finds every valid token (shape and checksum) in a text, for leak scanning.
 *
 * @example
 * ```ts
 * findTokens(logLine); // ["lk_live_…"] when a real key leaked
 * ```
 */
export function findTokens(text: string): string[] {
  const global = new RegExp(TOKEN_PATTERN.source, "g");
  const found: string[] = [];
  for (const match of text.matchAll(global)) {
    if (parseToken(match[0]).ok) found.push(match[0]);
  }
  return found;
}
