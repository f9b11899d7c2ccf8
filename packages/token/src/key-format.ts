import { isValidPrefix, MAX_TOKEN_LENGTH } from "./token.js";

/** The kinds of key format a deployment can accept. */
export const KEY_FORMAT_KINDS = ["latchkey", "hex", "base64url", "signed"] as const;

/** One of {@link KEY_FORMAT_KINDS}. */
export type KeyFormatKind = (typeof KEY_FORMAT_KINDS)[number];

/**
 * A named key format as an operator writes it in config (JSON or YAML).
 *
 * - `latchkey`: `<prefix>_<live|test>_<43 base62><6 base62 CRC32>`; `prefix` is `lk`, `og`, …
 * - `hex`: `<prefix><length hex characters>` (`oag_` + 32, seed 003); lower case unless `upperCase`.
 * - `base64url`: `<prefix><minLength…maxLength base64url characters>` (`og_`, `og_live_`).
 * - `signed`: `<prefix><base64url JSON payload>.<base64url HMAC-SHA256>` (`oai_`, seed 001).
 *
 * For every kind but `latchkey` the prefix is written in full, separator included (`og_live_`).
 */
export interface KeyFormatSpec {
  /** How Issue, key rows and metrics name it: `[a-z][a-z0-9_-]{0,31}`. */
  readonly name: string;
  readonly kind: KeyFormatKind;
  readonly prefix: string;
  /** `hex`: the exact number of hex characters (16–128, default 32). */
  readonly length?: number;
  /** `base64url`: fewest body characters accepted (16–400, default 43). */
  readonly minLength?: number;
  /** `base64url`: most body characters accepted (default `minLength`). */
  readonly maxLength?: number;
  /** `hex`: upper-case digits instead of lower case. */
  readonly upperCase?: boolean;
  /**
   * `signed`: also accept tokens the system being migrated from signed, whose payload is not
   * Latchkey's claims: HMAC-SHA256 over the base64url payload with the signing key of this kid.
   * Their payload is never read; the imported key's row says what such a key may do.
   */
  readonly legacyKid?: string;
}

/** A validated format, frozen; what parsers and generators take. */
export interface KeyFormat {
  readonly name: string;
  readonly kind: KeyFormatKind;
  /** As configured (`lk` for a latchkey format, `og_live_` otherwise). */
  readonly prefix: string;
  /** The literal every token of this format starts with (`lk_`, `og_live_`). */
  readonly literal: string;
  /** Fewest and most characters after {@link literal}. */
  readonly minBody: number;
  readonly maxBody: number;
  /** Body characters an issued key gets (`hex`, `base64url`). */
  readonly issueBody: number;
  readonly upperCase: boolean;
  /** `signed`: the kid whose signature a token with foreign claims may carry (see {@link KeyFormatSpec.legacyKid}). */
  readonly legacyKid: string | undefined;
}

/** Thrown for a bad format list; the message names the entry and field. */
export class KeyFormatConfigError extends Error {
  override readonly name = "KeyFormatConfigError";
}

const NAME = /^[a-z][a-z0-9_-]{0,31}$/;
// A full prefix: letters and digits in parts joined by `_` or `-`, ending in a separator.
const FULL_PREFIX = /^[A-Za-z][A-Za-z0-9]{0,15}(?:[_-][A-Za-z0-9]{1,15}){0,3}[_-]$/;
const SPEC_FIELDS = new Set([
  "name",
  "kind",
  "prefix",
  "length",
  "minLength",
  "maxLength",
  "upperCase",
  "legacyKid",
]);
/** What a signing key's `kid` may be: 1–32 of `A-Z a-z 0-9 . _ -`. */
export const SIGNING_KID_PATTERN = /^[A-Za-z0-9._-]{1,32}$/;
/** Fewest hex/base64url body characters an issued key may have: 128 bits. */
const MIN_ISSUE_BITS = 128;

function whole(value: unknown, at: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new KeyFormatConfigError(`${at} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

function validate(raw: unknown, index: number): KeyFormat {
  const at = `[${index}]`;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new KeyFormatConfigError(`${at} must be an object with name, kind and prefix`);
  }
  const spec = raw as Record<string, unknown>;
  for (const key of Object.keys(spec)) {
    if (!SPEC_FIELDS.has(key)) throw new KeyFormatConfigError(`${at}.${key} is not a format field`);
  }
  const { name, kind, prefix } = spec;
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new KeyFormatConfigError(`${at}.name must match [a-z][a-z0-9_-]{0,31}`);
  }
  if (typeof kind !== "string" || !(KEY_FORMAT_KINDS as readonly string[]).includes(kind)) {
    throw new KeyFormatConfigError(`${at}.kind must be one of ${KEY_FORMAT_KINDS.join(", ")}`);
  }
  if (typeof prefix !== "string") throw new KeyFormatConfigError(`${at}.prefix is required`);
  const onlyFor = (field: string, kinds: readonly string[]) => {
    if (spec[field] !== undefined && !kinds.includes(kind)) {
      throw new KeyFormatConfigError(`${at}.${field} does not apply to kind ${kind}`);
    }
  };
  onlyFor("length", ["hex"]);
  onlyFor("upperCase", ["hex"]);
  onlyFor("minLength", ["base64url"]);
  onlyFor("maxLength", ["base64url"]);
  onlyFor("legacyKid", ["signed"]);
  if (kind === "latchkey") {
    if (!isValidPrefix(prefix)) {
      throw new KeyFormatConfigError(
        `${at}.prefix must be a lower-case letter then up to 15 lower-case letters or digits (no separator)`,
      );
    }
    // The environment is part of the literal, so both are matched by the body pattern.
    return freeze({ name, kind, prefix, literal: `${prefix}_`, minBody: 54, maxBody: 54, issueBody: 49 });
  }
  if (!FULL_PREFIX.test(prefix)) {
    throw new KeyFormatConfigError(
      `${at}.prefix must be letters and digits ending in "_" or "-", like "og_live_" (at most 64)`,
    );
  }
  if (kind === "hex") {
    const length = spec.length === undefined ? 32 : whole(spec.length, `${at}.length`, 16, 128);
    if (spec.upperCase !== undefined && typeof spec.upperCase !== "boolean") {
      throw new KeyFormatConfigError(`${at}.upperCase must be true or false`);
    }
    return freeze({
      name,
      kind,
      prefix,
      literal: prefix,
      minBody: length,
      maxBody: length,
      issueBody: length,
      upperCase: spec.upperCase === true,
    });
  }
  if (kind === "base64url") {
    const min = spec.minLength === undefined ? 43 : whole(spec.minLength, `${at}.minLength`, 16, 400);
    const max = spec.maxLength === undefined ? min : whole(spec.maxLength, `${at}.maxLength`, min, 400);
    // 43 characters carry 258 bits, as much as a latchkey secret; a narrower range issues its widest.
    const issueBody = Math.min(Math.max(43, min), max);
    return freeze({ name, kind, prefix, literal: prefix, minBody: min, maxBody: max, issueBody });
  }
  const { legacyKid } = spec;
  if (legacyKid !== undefined && (typeof legacyKid !== "string" || !SIGNING_KID_PATTERN.test(legacyKid))) {
    throw new KeyFormatConfigError(`${at}.legacyKid must be a signing key's kid: 1–32 of A-Z a-z 0-9 . _ -`);
  }
  // signed: a payload, a "." and a 43-character signature; the whole token within MAX_TOKEN_LENGTH.
  return freeze({
    name,
    kind: "signed",
    prefix,
    literal: prefix,
    minBody: 2 + 1 + 43,
    maxBody: MAX_TOKEN_LENGTH - prefix.length,
    issueBody: 0,
    legacyKid,
  });
}

function freeze(
  fields: Omit<KeyFormat, "upperCase" | "legacyKid"> & { upperCase?: boolean; legacyKid?: string },
): KeyFormat {
  return Object.freeze({
    name: fields.name,
    kind: fields.kind,
    prefix: fields.prefix,
    literal: fields.literal,
    minBody: fields.minBody,
    maxBody: fields.maxBody,
    issueBody: fields.issueBody,
    upperCase: fields.upperCase ?? false,
    legacyKid: fields.legacyKid,
  });
}

/**
 * Why `format` may not be used to issue keys, or undefined when it may: an
 * issued hex or base64url key must carry at least 128 bits.
 *
 * @example
 * ```ts
 * issuableError(format); // "…carries 64 bits; issuing needs at least 128"
 * ```
 */
export function issuableError(format: KeyFormat): string | undefined {
  const bits =
    format.kind === "hex" ? format.issueBody * 4 : format.kind === "base64url" ? format.issueBody * 6 : 256;
  if (bits < MIN_ISSUE_BITS) {
    return `format ${format.name} carries ${bits} bits; issuing needs at least ${MIN_ISSUE_BITS}`;
  }
  return undefined;
}

/**
 * Validates a list of format specs from config: names unique, at least one,
 * at most 16, and no two formats with the same literal prefix and kind.
 *
 * @throws KeyFormatConfigError naming the entry (`[2].length must be …`).
 * @example
 * ```ts
 * const formats = validateKeyFormats([{ name: "oag", kind: "hex", prefix: "oag_", length: 32 }]);
 * ```
 */
export function validateKeyFormats(specs: unknown): readonly KeyFormat[] {
  if (!Array.isArray(specs)) throw new KeyFormatConfigError("must be a list of formats");
  if (specs.length === 0) throw new KeyFormatConfigError("must list at least one format");
  if (specs.length > 16) throw new KeyFormatConfigError("must list at most 16 formats");
  const formats = specs.map(validate);
  const names = new Set<string>();
  const literals = new Set<string>();
  formats.forEach((format, index) => {
    if (names.has(format.name))
      throw new KeyFormatConfigError(`[${index}].name ${format.name} is listed twice`);
    names.add(format.name);
    const literal = `${format.kind}:${format.literal}`;
    if (literals.has(literal)) {
      throw new KeyFormatConfigError(
        `[${index}].prefix ${format.prefix} is already used by a ${format.kind} format`,
      );
    }
    literals.add(literal);
  });
  return Object.freeze(formats);
}
