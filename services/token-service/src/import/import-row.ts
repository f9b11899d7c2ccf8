import { createHash } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { ImportKey } from "@latchkey/proto";
import { hashToken, type KeyEnvironment, MAX_TOKEN_LENGTH, parseToken, tokenHint } from "@latchkey/token";
import {
  invalidArgument,
  optionalExpiry,
  optionalText,
  rejectUnknownFields,
  requireEnvironment,
  requireMetadata,
  requireName,
  requireScopes,
  requireTeamId,
} from "../rpc/validate.js";

/** The format names an imported key may carry; `packages/token` holds their parsers. */
export const IMPORT_FORMATS: readonly string[] = Object.freeze(["latchkey", "hex", "base64url", "signed"]);

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
  readonly environment: KeyEnvironment;
  readonly tokenHash: Buffer;
  readonly hint: string;
  readonly format: string;
  readonly createdAt: Date | null;
  readonly lastUsedAt: Date | null;
  readonly expiresAt: Date | null;
  readonly metadata: Record<string, string>;
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
export function checkImportRow(row: ImportKey, keyPrefix: string, now: number): ImportCandidate {
  rejectUnknownFields(row, "ImportKey");
  const externalId = optionalText(row.externalId, "external_id", MAX_EXTERNAL_ID);
  if (externalId === null || externalId.trim() === "") throw invalidArgument("external_id", "is required");
  const teamId = requireTeamId(row.teamId);
  const name = requireName(row.name);
  const scopes = requireScopes(row.scopes);
  const format = row.format === "" ? "latchkey" : row.format;
  if (!IMPORT_FORMATS.includes(format)) {
    throw invalidArgument("format", `must be one of ${IMPORT_FORMATS.join(", ")}`);
  }
  let environment = requireEnvironment(row.environment);
  let tokenHash: Buffer;
  let hint: string;
  switch (row.secret.case) {
    case "token": {
      const token = row.secret.value;
      if (Buffer.byteLength(token, "utf8") > MAX_TOKEN_LENGTH) {
        throw invalidArgument("token", `must be at most ${MAX_TOKEN_LENGTH} bytes`);
      }
      if (!TOKEN_CHARACTERS.test(token)) {
        throw invalidArgument("token", "must be printable ASCII without spaces");
      }
      if (format === "latchkey") {
        const parsed = parseToken(token, keyPrefix);
        if (!parsed.ok) {
          throw invalidArgument(
            "token",
            `is not a latchkey token of prefix ${keyPrefix} (${parsed.reason}); set format for another shape`,
          );
        }
        if (row.environment !== "" && parsed.value.environment !== environment) {
          throw invalidArgument("environment", `must be the token's own (${parsed.value.environment})`);
        }
        environment = parsed.value.environment;
        hint = tokenHint(token);
      } else {
        hint = foreignHint(token);
      }
      tokenHash = hashToken(token);
      break;
    }
    case "tokenSha256":
      tokenHash = sha256Field(row.secret.value);
      hint = optionalText(row.hint, "hint", MAX_HINT) ?? "…";
      break;
    default:
      throw invalidArgument("token", "one of token or token_sha256 is required");
  }
  const createdAt = row.createTime ? timestampDate(row.createTime) : null;
  if (createdAt !== null && createdAt.getTime() > now) {
    throw invalidArgument("create_time", "must not be in the future");
  }
  const lastUsedAt = row.lastUsedTime ? timestampDate(row.lastUsedTime) : null;
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
    hint,
    format,
    createdAt,
    lastUsedAt,
    expiresAt,
    metadata,
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

/**
 * The hint of a token in a foreign format: its prefix (up to the last `_` in
 * its first 20 characters) and its last four characters, or no characters of
 * the secret at all when it is too short to spare four.
 */
function foreignHint(token: string): string {
  const cut = token.slice(0, 20).lastIndexOf("_");
  const prefix = cut >= 0 ? token.slice(0, cut + 1) : "";
  const secret = token.slice(prefix.length);
  return secret.length >= 16 ? `${prefix}…${secret.slice(-4)}` : `${prefix}…`;
}
