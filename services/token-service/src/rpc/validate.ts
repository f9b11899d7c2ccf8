import { type Timestamp, timestampDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { scopeListError } from "@latchkey/token";
import { isKeyId, isTeamId } from "../ids.js";

/** Builds the INVALID_ARGUMENT error every validation failure becomes. */
export function invalidArgument(field: string, problem: string): ConnectError {
  return new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
}

/**
 * Refuses a message that carries fields this server does not know (binary
 * protobuf keeps them in `$unknown`; JSON parsing already refuses them), so a
 * client talking to an older server hears about it instead of being ignored.
 */
export function rejectUnknownFields(
  message: { $unknown?: ReadonlyArray<{ no: number }> },
  name: string,
): void {
  const unknown = message.$unknown;
  if (unknown && unknown.length > 0) {
    throw invalidArgument(name, `unknown field number(s) ${unknown.map((f) => f.no).join(", ")}`);
  }
}

/** Checks a `key_…` id. */
export function requireKeyId(value: string, field = "key_id"): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (!isKeyId(value)) throw invalidArgument(field, "must look like key_ followed by 22 letters or digits");
  return value;
}

/** Checks a `team_…` id. */
export function requireTeamId(value: string, field = "team_id"): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (!isTeamId(value)) throw invalidArgument(field, "must look like team_ followed by 22 letters or digits");
  return value;
}

// Control characters (C0, DEL, C1) and Unicode line/paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** Checks a display name: 1–`max` characters, no control characters. */
export function requireName(value: string, field = "name", max = 100): string {
  const trimmed = value.trim();
  if (trimmed === "") throw invalidArgument(field, "is required");
  if ([...trimmed].length > max) throw invalidArgument(field, `must be at most ${max} characters`);
  if (CONTROL.test(trimmed)) throw invalidArgument(field, "must not contain control characters");
  return trimmed;
}

/** Checks optional free text (reasons): at most `max` characters, no control characters. */
export function optionalText(value: string, field: string, max: number): string | null {
  if (value === "") return null;
  if ([...value].length > max) throw invalidArgument(field, `must be at most ${max} characters`);
  if (CONTROL.test(value)) throw invalidArgument(field, "must not contain control characters");
  return value;
}

/** Checks a scope list (shape, length, count) and removes duplicates. */
export function requireScopes(scopes: readonly string[], field = "scopes"): string[] {
  const error = scopeListError(scopes);
  if (error) throw invalidArgument(field, error);
  return [...new Set(scopes)];
}

const METADATA_KEY = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$/;

/** Checks metadata: ≤ 32 entries, keys ≤ 64 safe characters, values ≤ 512 characters without control characters. */
export function requireMetadata(
  metadata: Record<string, string>,
  field = "metadata",
): Record<string, string> {
  const entries = Object.entries(metadata);
  if (entries.length > 32) throw invalidArgument(field, "at most 32 entries are allowed");
  for (const [key, value] of entries) {
    if (!METADATA_KEY.test(key)) {
      throw invalidArgument(
        field,
        `key ${JSON.stringify(key.slice(0, 80))} must be 1–64 of A-Z a-z 0-9 . _ : / -`,
      );
    }
    if ([...value].length > 512) throw invalidArgument(`${field}.${key}`, "must be at most 512 characters");
    if (CONTROL.test(value)) throw invalidArgument(`${field}.${key}`, "must not contain control characters");
  }
  return Object.fromEntries(entries);
}

/** Checks a page size: 0 means `fallback`, otherwise 1–500. */
export function pageSize(value: number, fallback = 100): number {
  if (value === 0) return fallback;
  if (value < 0 || value > 500) throw invalidArgument("page_size", "must be between 1 and 500");
  return value;
}

const MAX_LIFETIME_MS = 100 * 365 * 86_400_000;

/** Checks an optional expiry: in the future and within 100 years; null when unset. */
export function optionalExpiry(value: Timestamp | undefined, field = "expire_time"): Date | null {
  if (!value) return null;
  const expiresAt = timestampDate(value);
  const ahead = expiresAt.getTime() - Date.now();
  if (!(ahead > 0)) throw invalidArgument(field, "must be in the future");
  if (ahead > MAX_LIFETIME_MS) throw invalidArgument(field, "must be within 100 years");
  return expiresAt;
}

/** Checks an optional time: 1970 to 9999, nanos in range. Its milliseconds, or undefined when unset. */
export function optionalInstant(timestamp: Timestamp | undefined, field: string): number | undefined {
  if (timestamp === undefined) return undefined;
  const ms = timestampMs(timestamp);
  if (
    !Number.isFinite(ms) ||
    ms < 0 ||
    ms > 253_402_300_799_000 ||
    timestamp.nanos < 0 ||
    timestamp.nanos > 999_999_999
  ) {
    throw invalidArgument(field, "must be a time between 1970 and 9999");
  }
  return ms;
}
