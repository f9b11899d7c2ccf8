import type { RequiredSecret } from "@latchkey/proto";
import type { StoredRequiredSecret } from "../db/tables.js";
import { isKeychainId } from "../ids.js";
import { invalidArgument, optionalText, rejectUnknownFields } from "../rpc/validate.js";

// The shapes of keychain RPC fields. Every check names the request field and never quotes a
// secret's value.

const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
// npm's rules for a package name, lower case: an optional `@scope/`, then the name.
const PACKAGE_NAME = /^(?:@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*$/;
const MAX_PACKAGE_NAME = 214;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const SHA256_HEX = /^(?:sha256:)?([0-9A-Fa-f]{64})$/;
/** At most this many names in a package's `required` and in a grant. */
export const MAX_NAMES = 64;
/** The largest secret value, in bytes of UTF-8. */
export const MAX_SECRET_BYTES = 16_384;

/** Checks a `kc_…` id. */
export function requireKeychainId(value: string, field = "keychain_id"): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (!isKeychainId(value))
    throw invalidArgument(field, "must look like kc_ followed by 22 letters or digits");
  return value;
}

/** Checks a secret's name (`STRIPE_SECRET_KEY`). */
export function requireSecretName(value: string, field = "name"): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (!SECRET_NAME.test(value)) {
    throw invalidArgument(field, "must be a letter or _, then up to 127 of A-Z a-z 0-9 _");
  }
  return value;
}

/** Checks a secret's value: 1–16384 bytes, no NUL. The message never quotes it. */
export function requireSecretValue(value: string, field = "value"): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (Buffer.byteLength(value, "utf8") > MAX_SECRET_BYTES) {
    throw invalidArgument(field, `must be at most ${MAX_SECRET_BYTES} bytes`);
  }
  if (value.includes("\0")) throw invalidArgument(field, "must not contain NUL characters");
  if (LONE_SURROGATE.test(value))
    throw invalidArgument(field, "must be well-formed UTF-8 (no lone surrogates)");
  return value;
}

/** Checks a package name (`@user/package`). */
export function requirePackageName(value: string, field = "package_name"): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (value.length > MAX_PACKAGE_NAME || !PACKAGE_NAME.test(value) || value.includes("..")) {
    throw invalidArgument(
      field,
      `must be a lower-case npm package name like @user/package (at most ${MAX_PACKAGE_NAME} characters)`,
    );
  }
  return value;
}

/** Checks a package version (`v-20250101`, `1.2.0`). */
export function requireVersion(value: string, field = "version"): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (!VERSION.test(value))
    throw invalidArgument(field, "must be 1–64 of A-Z a-z 0-9 . _ + - (starting with a letter or digit)");
  return value;
}

/** Checks a SHA-256 given as 64 hex digits (or `sha256:<hex>`, an image digest); returns its 32 bytes. */
export function requireSha256(value: string, field = "sha256"): Buffer {
  if (value === "") throw invalidArgument(field, "is required");
  const match = SHA256_HEX.exec(value);
  if (match === null)
    throw invalidArgument(field, "must be a SHA-256: 64 hex digits, optionally prefixed sha256:");
  return Buffer.from((match[1] as string).toLowerCase(), "hex");
}

/** Checks a list of secret names: at most 64, each well formed, no duplicates. */
export function requireNames(values: readonly string[], field: string, required = true): string[] {
  if (required && values.length === 0) throw invalidArgument(field, "must name at least one secret");
  if (values.length > MAX_NAMES) throw invalidArgument(field, `must name at most ${MAX_NAMES} secrets`);
  const seen = new Set<string>();
  values.forEach((value, index) => {
    requireSecretName(value, `${field}[${index}]`);
    if (seen.has(value)) throw invalidArgument(`${field}[${index}]`, `${value} is named twice`);
    seen.add(value);
  });
  return [...seen];
}

/** Checks a package's `keychain.required`: names as {@link requireNames}, descriptions ≤ 500 characters. */
export function requireDeclared(values: readonly RequiredSecret[], field: string): StoredRequiredSecret[] {
  values.forEach((entry, index) => {
    rejectUnknownFields(entry, `${field}[${index}]`);
  });
  requireNames(
    values.map((entry) => entry.name),
    field,
    false,
  );
  return values.map((entry, index) => ({
    name: entry.name,
    description: optionalText(entry.description, `${field}[${index}].description`, 500) ?? "",
  }));
}
