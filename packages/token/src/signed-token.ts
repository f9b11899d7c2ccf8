import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { KeyFormatConfigError, SIGNING_KID_PATTERN as KID } from "./key-format.js";
import { MAX_SCOPES, SCOPE_PATTERN } from "./scopes.js";
import type { KeyEnvironment } from "./token.js";

/** A signing key as configured: base64url secret of at least 32 bytes. */
export interface SigningKeySpec {
  /** Carried in every token it signs (`[A-Za-z0-9._-]{1,32}`). */
  readonly kid: string;
  readonly secret: string;
  /** The one key new tokens are signed with; exactly one is active when any is listed. */
  readonly active?: boolean;
  /** ISO time after which tokens it signed are refused (`signing_key_expired`); unset = no end. */
  readonly notAfter?: string;
}

/** A validated signing key. `secret` never leaves the process. */
export interface SigningKey {
  readonly kid: string;
  readonly secret: Buffer;
  readonly active: boolean;
  /** Epoch ms; `Infinity` for no end. */
  readonly notAfter: number;
}

/** What a signed key's payload says about it. */
export interface SignedClaims {
  readonly kid: string;
  readonly keyId: string;
  readonly teamId: string;
  readonly scopes: readonly string[];
  readonly environment: KeyEnvironment;
  /** Epoch ms; undefined for a key that never expires. */
  readonly expiresAt?: number;
}

/** Why a signed key failed, before any lookup. */
export type SignedRejection =
  | "shape"
  | "claims"
  | "unknown_signing_key"
  | "signature"
  | "signing_key_expired"
  | "expired";

const B64URL = /^[A-Za-z0-9_-]+$/;
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;
const KEY_ID = /^key_[0-9A-Za-z]{1,64}$/;
const TEAM_ID = /^team_[0-9A-Za-z]{1,64}$/;
const NONCE = /^[A-Za-z0-9_-]{22,64}$/;
const CLAIM_FIELDS = new Set(["kid", "id", "team", "scopes", "env", "exp", "n"]);
const SPEC_FIELDS = new Set(["kid", "secret", "active", "notAfter"]);
/** Longest payload decoded: the whole token is at most 512 characters anyway. */
const MAX_PAYLOAD = 480;

/**
 * Validates the signing keys from config: unique kids, secrets of at least 32
 * bytes, exactly one active, and the active one not past its end.
 *
 * @throws KeyFormatConfigError naming the entry (`[1].secret must …`).
 * @example
 * ```ts
 * validateSigningKeys([{ kid: "2026-12", secret: "…43 base64url…", active: true }]);
 * ```
 */
export function validateSigningKeys(specs: unknown, now = Date.now()): readonly SigningKey[] {
  if (!Array.isArray(specs)) throw new KeyFormatConfigError("must be a list of signing keys");
  if (specs.length > 16) throw new KeyFormatConfigError("must list at most 16 signing keys");
  const kids = new Set<string>();
  const keys = specs.map((raw, index): SigningKey => {
    const at = `[${index}]`;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      throw new KeyFormatConfigError(`${at} must be an object with kid and secret`);
    }
    const spec = raw as Record<string, unknown>;
    for (const key of Object.keys(spec)) {
      if (!SPEC_FIELDS.has(key)) throw new KeyFormatConfigError(`${at}.${key} is not a signing key field`);
    }
    if (typeof spec.kid !== "string" || !KID.test(spec.kid)) {
      throw new KeyFormatConfigError(`${at}.kid must be 1–32 of A-Z a-z 0-9 . _ -`);
    }
    if (kids.has(spec.kid)) throw new KeyFormatConfigError(`${at}.kid ${spec.kid} is listed twice`);
    kids.add(spec.kid);
    const secret =
      typeof spec.secret === "string" && B64URL.test(spec.secret)
        ? Buffer.from(spec.secret, "base64url")
        : undefined;
    if (secret === undefined || secret.length < 32 || secret.length > 256) {
      // The message never repeats the secret.
      throw new KeyFormatConfigError(`${at}.secret must be 32–256 bytes as base64url (43+ characters)`);
    }
    if (spec.active !== undefined && typeof spec.active !== "boolean") {
      throw new KeyFormatConfigError(`${at}.active must be true or false`);
    }
    let notAfter = Number.POSITIVE_INFINITY;
    if (spec.notAfter !== undefined) {
      notAfter = typeof spec.notAfter === "string" ? Date.parse(spec.notAfter) : Number.NaN;
      if (!Number.isFinite(notAfter)) {
        throw new KeyFormatConfigError(`${at}.notAfter must be an ISO time like 2027-01-31T00:00:00Z`);
      }
    }
    const active = spec.active === true;
    if (active && notAfter <= now) {
      throw new KeyFormatConfigError(`${at} is active but its notAfter has passed`);
    }
    return Object.freeze({ kid: spec.kid, secret, active, notAfter });
  });
  const active = keys.filter((key) => key.active).length;
  if (keys.length > 0 && active !== 1) {
    throw new KeyFormatConfigError(`exactly one signing key must be active (found ${active})`);
  }
  return Object.freeze(keys);
}

function mac(key: SigningKey, payload: string): Buffer {
  return createHmac("sha256", key.secret).update(payload, "ascii").digest();
}

/**
 * Signs claims into the body of a signed token (`<payload>.<signature>`), with
 * a random nonce so that even a holder of the signing secret cannot rebuild an
 * existing key's token (the stored hash stays the check of record).
 *
 * @example
 * ```ts
 * const body = signClaims(activeKey, { kid: activeKey.kid, keyId, teamId, scopes: ["read"], environment: "live" });
 * ```
 */
export function signClaims(key: SigningKey, claims: Omit<SignedClaims, "kid">): string {
  const payload = Buffer.from(
    JSON.stringify({
      kid: key.kid,
      id: claims.keyId,
      team: claims.teamId,
      scopes: claims.scopes,
      env: claims.environment,
      ...(claims.expiresAt === undefined ? {} : { exp: Math.floor(claims.expiresAt / 1000) }),
      n: randomBytes(16).toString("base64url"),
    }),
  ).toString("base64url");
  return `${payload}.${mac(key, payload).toString("base64url")}`;
}

function claimsOf(payload: string): SignedClaims | undefined {
  if (payload.length > MAX_PAYLOAD || !B64URL.test(payload)) return undefined;
  const bytes = Buffer.from(payload, "base64url");
  // Node's decoder ignores stray bits; only the canonical encoding is accepted.
  if (bytes.toString("base64url") !== payload) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const fields = value as Record<string, unknown>;
  for (const key of Object.keys(fields)) if (!CLAIM_FIELDS.has(key)) return undefined;
  const { kid, id, team, scopes, env, exp, n } = fields;
  if (typeof kid !== "string" || !KID.test(kid)) return undefined;
  if (typeof id !== "string" || !KEY_ID.test(id)) return undefined;
  if (typeof team !== "string" || !TEAM_ID.test(team)) return undefined;
  if (typeof n !== "string" || !NONCE.test(n)) return undefined;
  if (env !== "live" && env !== "test") return undefined;
  if (!Array.isArray(scopes) || scopes.length > MAX_SCOPES) return undefined;
  if (!scopes.every((scope) => typeof scope === "string" && SCOPE_PATTERN.test(scope))) return undefined;
  if (exp !== undefined && (typeof exp !== "number" || !Number.isSafeInteger(exp) || exp <= 0))
    return undefined;
  return {
    kid,
    keyId: id,
    teamId: team,
    scopes: Object.freeze([...(scopes as string[])]),
    environment: env,
    ...(exp === undefined ? {} : { expiresAt: (exp as number) * 1000 }),
  };
}

/** A signed token's body that passed {@link checkSignedBody}. */
export interface CheckedSignedBody {
  readonly ok: true;
  /** Latchkey's claims; undefined for a legacy token (foreign payload, never read). */
  readonly claims: SignedClaims | undefined;
  /** The signing key that signed it: the claims' `kid`, or the format's `legacyKid`. */
  readonly kid: string;
  readonly signatureChecked: boolean;
}

/**
 * Checks the body of a signed token: shape, claims, then (when `keys` is
 * given) the signature in constant time, the signing key's end and the
 * token's own expiry. With `keys` undefined only the shape and claims are
 * checked (a verifier that does not hold the secret).
 *
 * With `legacyKid`, a payload that is not Latchkey's claims is a token of the
 * system being migrated from: its payload is not read, and its signature is
 * checked with that signing key (HMAC-SHA256 over the base64url payload as it
 * stands, the JWT convention).
 *
 * @example
 * ```ts
 * const outcome = checkSignedBody(body, signingKeys, Date.now());
 * if (!outcome.ok) return MALFORMED; // forged: no lookup
 * ```
 */
export function checkSignedBody(
  body: string,
  keys: readonly SigningKey[] | undefined,
  now: number,
  legacyKid?: string,
): CheckedSignedBody | { ok: false; reason: SignedRejection } {
  const dot = body.indexOf(".");
  if (dot < 2 || body.indexOf(".", dot + 1) !== -1) return { ok: false, reason: "shape" };
  const payload = body.slice(0, dot);
  const signature = body.slice(dot + 1);
  if (!SIGNATURE.test(signature)) return { ok: false, reason: "shape" };
  const claims = claimsOf(payload);
  if (claims === undefined && (legacyKid === undefined || !isLegacyPayload(payload))) {
    return { ok: false, reason: "claims" };
  }
  const kid = claims?.kid ?? (legacyKid as string);
  if (keys === undefined) return { ok: true, claims, kid, signatureChecked: false };
  const key = keys.find((each) => each.kid === kid);
  if (key === undefined) return { ok: false, reason: "unknown_signing_key" };
  const given = Buffer.from(signature, "base64url");
  if (given.toString("base64url") !== signature) return { ok: false, reason: "signature" };
  if (!timingSafeEqual(given, mac(key, payload))) return { ok: false, reason: "signature" };
  if (key.notAfter <= now) return { ok: false, reason: "signing_key_expired" };
  if (claims?.expiresAt !== undefined && claims.expiresAt <= now) return { ok: false, reason: "expired" };
  return { ok: true, claims, kid, signatureChecked: true };
}

/** A legacy token's payload: base64url of any content, within the payload bound. */
function isLegacyPayload(payload: string): boolean {
  return payload.length <= MAX_PAYLOAD && B64URL.test(payload);
}
