import { isValidEnvironment, isValidOwner } from "@latchkey/token";
import { invalidArgument } from "../rpc/validate.js";

/**
 * Checks an environment label: "" means `live`; otherwise a lower-case letter,
 * then up to 31 of a-z, 0-9, `_`, `-` (`prod`, `staging`, `dev`, `live`, `test`).
 */
export function requireEnvironment(value: string, field = "environment"): string {
  if (value === "") return "live";
  if (!isValidEnvironment(value)) {
    throw invalidArgument(field, "must be a lower-case letter then up to 31 of a-z, 0-9, _ and -");
  }
  return value;
}

/**
 * Checks an owner (an external id): "" for none, else 1–128 of
 * `A-Za-z0-9._~:@+-`, starting with a letter or digit and not ending in `.`,
 * so it has one spelling as a path segment (see `OWNER_PATTERN`).
 */
export function requireOwner(value: string, field = "owner"): string | null {
  if (value === "") return null;
  if (!isValidOwner(value)) {
    throw invalidArgument(
      field,
      "must be 1–128 of A-Z, a-z, 0-9, ., _, ~, :, @, + and -, starting with a letter or digit and not ending in .",
    );
  }
  return value;
}
