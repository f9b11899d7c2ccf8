import { createHash } from "node:crypto";
import type { ImportKey } from "@latchkey/proto";
import {
  formatHint,
  hashToken,
  type KeyFormats,
  MAX_TOKEN_LENGTH,
  parseTokenWith,
  tokenEnvironment,
} from "@latchkey/token";
import { requireEnvironment, requireOwner } from "../keys/key-owner-environment.js";
import {
  invalidArgument,
  optionalExpiry,
  optionalInstant,
  optionalText,
  rejectUnknownFields,
  requireMetadata,
  requireName,
  requireScopes,
  requireTeamId,
} from "../rpc/validate.js";

const MAX_EXTERNAL_ID = 200;
const MAX_HINT = 32;
// Printable ASCII without spaces: what any of the formats' tokens is made of.
const TOKEN_CHARACTERS = /^[\x21-\x7e]+$/;
const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;
const BASE64_SHA256 = /^[A-Za-z0-9+/_-]{43}=?$/;

/** One import row, checked: what is stored, and the fingerprint that tells a re-run from a conflict. */
export interface ImportCandidate {
  readonly externalId: string;
  readonly teamId: string;
  readonly name: string;
  readonly scopes: string[];
  readonly environment: string;
  readonly tokenHash: Buffer;
  /** The field the key came in, for messages about it. */
  readonly secretField: "token" | "token_sha256";
  readonly hint: string;
  readonly format: string;
  readonly createdAt: Date | null;
  readonly lastUsedAt: Date | null;
  readonly expiresAt: Date | null;
  readonly metadata: Record<string, string>;
  readonly owner: string | null;
  /** The signing key of a plaintext signed token (its claims' kid, or its format's legacyKid); else null. */
  readonly signingKid: string | null;
  /** SHA-256 over the row as sent (not as defaulted), so the same row always gives the same value. */
  readonly fingerprint: Buffer;
}

/**
 * Checks one row of an ImportKeys batch, field by field, with the same rules
 * as Issue where the field is the same. Every message names the field and
 * never repeats a token or a hash.
 *
 * @throws ConnectError (INVALID_ARGUMENT) naming the field.
 */
export function checkImportRow(row: ImportKey, formats: KeyFormats, now: number): ImportCandidate {
  rejectUnknownFields(row, "ImportKey");
  const externalId = optionalText(row.externalId, "external_id", MAX_EXTERNAL_ID);
  if (externalId === null || externalId.trim() === "") throw invalidArgument("external_id", "is required");
  const teamId = requireTeamId(row.teamId);
  const name = requireName(row.name);
  const scopes = requireScopes(row.scopes);
  // A format of this deployment's (`keyFormats`), so the key verifies once imported; empty: the
  // format the token matches, or the first configured one for a hash.
  if (row.format !== "" && formats.byName(row.format) === undefined) {
    throw invalidArgument(
      "format",
      `must be one of this deployment's key formats: ${formats.formats.map((f) => f.name).join(", ")}`,
    );
  }
  let format = row.format;
  const environment = requireEnvironment(row.environment);
  const owner = requireOwner(row.owner);
  let tokenHash: Buffer;
  let hint: string;
  let signingKid: string | null = null;
  switch (row.secret.case) {
    case "token": {
      const token = row.secret.value;
      if (Buffer.byteLength(token, "utf8") > MAX_TOKEN_LENGTH) {
        throw invalidArgument("token", `must be at most ${MAX_TOKEN_LENGTH} bytes`);
      }
      if (!TOKEN_CHARACTERS.test(token)) {
        throw invalidArgument("token", "must be printable ASCII without spaces");
      }
      // Every check Verify makes before its lookup, a signature included (with the format's legacyKid
      // for a token the old system signed): a key that could never verify is refused now, not imported.
      const parsed = parseTokenWith(formats, token, now);
      const matched = parsed.ok ? parsed.format : undefined;
      if (matched === undefined || (format !== "" && matched.name !== format)) {
        throw invalidArgument(
          "token",
          `does not match ${format === "" ? "any of this deployment's key formats" : `the format ${format}`} (${parsed.ok ? "another format" : parsed.reason})`,
        );
      }
      format = matched.name;
      signingKid = (parsed.ok && parsed.signingKid) || null;
      if (parsed.ok && parsed.environment !== undefined && row.environment !== "") {
        if (tokenEnvironment(environment) !== parsed.environment) {
          throw invalidArgument("environment", `must be the token's own (${parsed.environment})`);
        }
      }
      hint = formatHint(matched, token);
      tokenHash = hashToken(token);
      break;
    }
    case "tokenSha256":
      tokenHash = sha256Field(row.secret.value);
      hint = optionalText(row.hint, "hint", MAX_HINT) ?? "…";
      if (format === "") format = formats.formats[0]?.name ?? "latchkey";
      break;
    default:
      throw invalidArgument("token", "one of token or token_sha256 is required");
  }
  // Range-checked first: a time PostgreSQL cannot store (year -5000) failed the whole batch as INTERNAL.
  const createdMs = optionalInstant(row.createTime, "create_time");
  const createdAt = createdMs === undefined ? null : new Date(createdMs);
  if (createdAt !== null && createdAt.getTime() > now) {
    throw invalidArgument("create_time", "must not be in the future");
  }
  const lastUsedMs = optionalInstant(row.lastUsedTime, "last_used_time");
  const lastUsedAt = lastUsedMs === undefined ? null : new Date(lastUsedMs);
  if (lastUsedAt !== null) {
    if (lastUsedAt.getTime() > now) throw invalidArgument("last_used_time", "must not be in the future");
    if (createdAt !== null && lastUsedAt < createdAt) {
      throw invalidArgument("last_used_time", "must not be before create_time");
    }
  }
  const expiresAt = optionalExpiry(row.expireTime);
  const metadata = requireMetadata(row.metadata);
  const fingerprint = createHash("sha256")
    .update(
      JSON.stringify([
        teamId,
        name,
        [...scopes].sort(),
        environment,
        tokenHash.toString("hex"),
        format,
        createdAt?.toISOString() ?? null,
        lastUsedAt?.toISOString() ?? null,
        expiresAt?.toISOString() ?? null,
        Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        row.secret.case === "tokenSha256" ? hint : null,
        // Appended only when set, so rows imported before owners existed keep their fingerprint.
        ...(owner === null ? [] : [owner]),
      ]),
    )
    .digest();
  return {
    externalId,
    teamId,
    name,
    scopes,
    environment,
    tokenHash,
    secretField: row.secret.case === "token" ? "token" : "token_sha256",
    hint,
    format,
    createdAt,
    lastUsedAt,
    expiresAt,
    metadata,
    owner,
    signingKid,
    fingerprint,
  };
}

/** A SHA-256 given as 64 hex characters, or as base64 / base64url (padded or not). */
function sha256Field(value: string): Buffer {
  if (value === "") throw invalidArgument("token_sha256", "is required");
  if (HEX_SHA256.test(value)) return Buffer.from(value, "hex");
  if (BASE64_SHA256.test(value)) {
    const bytes = Buffer.from(value.replace(/-/g, "+").replace(/_/g, "/"), "base64");
    if (bytes.length === 32) return bytes;
  }
  throw invalidArgument("token_sha256", "must be a SHA-256: 64 hex characters, or 43–44 of base64/base64url");
}
