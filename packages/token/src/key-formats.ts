import { randomBytes } from "node:crypto";
import { issuableError, type KeyFormat, KeyFormatConfigError, validateKeyFormats } from "./key-format.js";
import {
  checkSignedBody,
  type SignedClaims,
  type SignedRejection,
  type SigningKey,
  signClaims,
  validateSigningKeys,
} from "./signed-token.js";
import { generateToken, type KeyEnvironment, MAX_TOKEN_LENGTH, parseToken, tokenHint } from "./token.js";

/**
 * The formats one deployment accepts, most specific literal prefix first, and
 * (at the token-service) the signing keys of its `signed` formats.
 */
export interface KeyFormats {
  /** In the order configured; the first is the default for issuing. */
  readonly formats: readonly KeyFormat[];
  /** Empty where signatures are not checked (a verifier without the secret). */
  readonly signingKeys: readonly SigningKey[];
  /** Whether signed keys' signatures are checked here. */
  readonly checksSignatures: boolean;
  byName(name: string): KeyFormat | undefined;
}

/** Why a token matched no accepted format; never names more than the format. */
export type FormatRejection = "empty" | "too_long" | "no_format" | "shape" | "checksum" | SignedRejection;

/** Outcome of {@link parseTokenWith}: the format that matched, or why none did. */
export type FormatParseOutcome =
  | {
      ok: true;
      format: KeyFormat;
      environment?: KeyEnvironment;
      /** A signed key's claims; undefined for other formats and for a legacy signed key. */
      claims?: SignedClaims;
      /** A signed key's signing key (its claims' kid, or the format's `legacyKid`). */
      signingKid?: string;
    }
  | { ok: false; reason: FormatRejection; format?: string };

/** The format list a deployment has when it configures none: today's `lk_live_…` keys. */
export function defaultKeyFormatSpecs(prefix = "lk") {
  return [{ name: "latchkey", kind: "latchkey" as const, prefix }];
}

/**
 * Validates formats and signing keys and builds the registry.
 *
 * @param options.signingKeys the token-service's keys; leave out where signatures are not checked.
 * @throws KeyFormatConfigError naming the bad entry.
 * @example
 * ```ts
 * const formats = createKeyFormats({
 *   formats: [{ name: "og-live", kind: "base64url", prefix: "og_live_" }, { name: "oag", kind: "hex", prefix: "oag_" }],
 * });
 * parseTokenWith(formats, "oag_0123456789abcdef0123456789abcdef"); // { ok: true, format: { name: "oag", … } }
 * ```
 */
export function createKeyFormats(options: {
  formats: unknown;
  signingKeys?: unknown;
  now?: number;
}): KeyFormats {
  const formats = validateKeyFormats(options.formats);
  const signingKeys =
    options.signingKeys === undefined ? [] : validateSigningKeys(options.signingKeys, options.now);
  if (options.signingKeys !== undefined) {
    for (const [index, format] of formats.entries()) {
      if (format.legacyKid !== undefined && !signingKeys.some((key) => key.kid === format.legacyKid)) {
        throw new KeyFormatConfigError(`[${index}].legacyKid ${format.legacyKid} names no signing key`);
      }
    }
  }
  const byName = new Map(formats.map((format) => [format.name, format]));
  return Object.freeze({
    formats,
    signingKeys,
    checksSignatures: options.signingKeys !== undefined,
    byName: (name: string) => byName.get(name),
    [ORDERED]: [...formats].sort((a, b) => b.literal.length - a.literal.length),
  });
}

const ORDERED = Symbol("ordered");
type Ordered = KeyFormats & { readonly [ORDERED]: readonly KeyFormat[] };

const BODY_PATTERNS = new WeakMap<KeyFormat, RegExp>();

/** The body pattern of a hex or base64url format, anchored. */
export function bodySource(format: KeyFormat): string {
  switch (format.kind) {
    case "hex":
      return `${format.upperCase ? "[0-9A-F]" : "[0-9a-f]"}{${format.minBody}}`;
    case "base64url":
      return `[A-Za-z0-9_-]{${format.minBody},${format.maxBody}}`;
    case "signed":
      return `[A-Za-z0-9_-]{2,${format.maxBody - 44}}\\.[A-Za-z0-9_-]{43}`;
    case "latchkey":
      return "(?:live|test)_[0-9A-Za-z]{49}";
  }
}

function bodyPattern(format: KeyFormat): RegExp {
  let pattern = BODY_PATTERNS.get(format);
  if (pattern === undefined) {
    pattern = new RegExp(`^${bodySource(format)}$`);
    BODY_PATTERNS.set(format, pattern);
  }
  return pattern;
}

function parseAs(formats: KeyFormats, format: KeyFormat, token: string, now: number): FormatParseOutcome {
  if (format.kind === "latchkey") {
    const parsed = parseToken(token, format.prefix);
    if (parsed.ok) return { ok: true, format, environment: parsed.value.environment };
    return { ok: false, reason: parsed.reason === "checksum" ? "checksum" : "shape", format: format.name };
  }
  const body = token.slice(format.literal.length);
  if (format.kind === "signed") {
    if (body.length > format.maxBody) return { ok: false, reason: "shape", format: format.name };
    const checked = checkSignedBody(
      body,
      formats.checksSignatures ? formats.signingKeys : undefined,
      now,
      format.legacyKid,
    );
    if (!checked.ok) return { ok: false, reason: checked.reason, format: format.name };
    if (checked.claims === undefined) return { ok: true, format, signingKid: checked.kid };
    return {
      ok: true,
      format,
      environment: checked.claims.environment,
      claims: checked.claims,
      signingKid: checked.kid,
    };
  }
  if (!bodyPattern(format).test(body)) return { ok: false, reason: "shape", format: format.name };
  return { ok: true, format };
}

/**
 * Checks a token against every accepted format, with no I/O: the format whose
 * literal prefix it carries (the longest such prefix first) and whose body it
 * matches exactly. A token matching none is refused here, before any cache or
 * database sees it.
 *
 * @example
 * ```ts
 * const outcome = parseTokenWith(formats, token);
 * if (!outcome.ok) return { result: "MALFORMED", reason: outcome.reason };
 * ```
 */
export function parseTokenWith(formats: KeyFormats, token: string, now = Date.now()): FormatParseOutcome {
  if (token.length === 0) return { ok: false, reason: "empty" };
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: "too_long" };
  let first: FormatParseOutcome | undefined;
  for (const format of (formats as Ordered)[ORDERED]) {
    if (!token.startsWith(format.literal)) continue;
    const outcome = parseAs(formats, format, token, now);
    if (outcome.ok) return outcome;
    first ??= outcome;
  }
  return first ?? { ok: false, reason: "no_format" };
}

/** What a new token of a format needs beyond its format. */
export interface NewTokenOptions {
  readonly environment: KeyEnvironment;
  /** For `signed` formats: the claims to sign (the active signing key adds its kid). */
  readonly claims?: Omit<SignedClaims, "kid" | "environment">;
}

/**
 * Generates a token of the named format from the CSPRNG (or signs one with the
 * active signing key). Throws a RangeError for an unknown or non-issuable format.
 *
 * @example
 * ```ts
 * generateTokenWith(formats, "oag", { environment: "live" }); // "oag_<32 hex>"
 * ```
 */
export function generateTokenWith(formats: KeyFormats, name: string, options: NewTokenOptions): string {
  const format = formats.byName(name);
  if (format === undefined) throw new RangeError(`no key format named ${JSON.stringify(name)}`);
  const unissuable = issuableError(format);
  if (unissuable !== undefined) throw new RangeError(unissuable);
  switch (format.kind) {
    case "latchkey":
      return generateToken({ prefix: format.prefix, environment: options.environment });
    case "hex": {
      const hex = randomBytes(Math.ceil(format.issueBody / 2))
        .toString("hex")
        .slice(0, format.issueBody);
      return format.literal + (format.upperCase ? hex.toUpperCase() : hex);
    }
    case "base64url":
      return (
        format.literal +
        randomBytes(Math.ceil((format.issueBody * 6) / 8))
          .toString("base64url")
          .slice(0, format.issueBody)
      );
    case "signed": {
      const key = formats.signingKeys.find((each) => each.active);
      if (key === undefined) throw new RangeError(`format ${name} needs an active signing key to issue`);
      if (options.claims === undefined) throw new RangeError(`format ${name} needs claims to sign`);
      const token = format.literal + signClaims(key, { ...options.claims, environment: options.environment });
      if (token.length > MAX_TOKEN_LENGTH) {
        throw new RangeError(
          `a signed key with these scopes would be longer than ${MAX_TOKEN_LENGTH} characters`,
        );
      }
      return token;
    }
  }
}

/**
 * Checks that a registry can issue keys of `name` (the token-service's start-up check).
 *
 * @throws KeyFormatConfigError saying why not.
 */
export function assertIssuable(formats: KeyFormats, name: string): KeyFormat {
  const format = formats.byName(name);
  if (format === undefined) throw new KeyFormatConfigError(`names no configured format: ${name}`);
  const unissuable = issuableError(format);
  if (unissuable !== undefined) throw new KeyFormatConfigError(unissuable);
  if (format.kind === "signed" && !formats.signingKeys.some((key) => key.active)) {
    throw new KeyFormatConfigError(`format ${name} is signed but no signing key is active`);
  }
  return format;
}

/**
 * A display hint for a token of `format`: its literal prefix (with the
 * environment for a latchkey key) and its last four characters.
 *
 * @example
 * ```ts
 * formatHint(ogLive, token); // "og_live_…x9Qa"
 * ```
 */
export function formatHint(format: KeyFormat, token: string): string {
  if (format.kind === "latchkey") return tokenHint(token);
  return `${format.literal}…${token.slice(-4)}`;
}
