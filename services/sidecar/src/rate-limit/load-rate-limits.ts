import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { type RateLimitFile, rateLimitFileSchema } from "./rate-limit-schema.js";

const MAX_FILE_BYTES = 1024 * 1024;

/** Thrown when the rate-limit file cannot be read or is invalid; each problem names where it is. */
export class RateLimitConfigError extends Error {
  override readonly name = "RateLimitConfigError";
}

/**
 * Validates a parsed rate-limit document (tiers, scope defaults).
 *
 * @example
 * ```ts
 * parseRateLimits({ tiers: { verified: [{ name: "minute", limit: 1, window: "1m" }] } });
 * ```
 * @throws RateLimitConfigError naming each bad entry.
 */
export function parseRateLimits(document: unknown, source = "rate limits"): RateLimitFile {
  const parsed = rateLimitFileSchema.safeParse(document ?? {});
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map(
    (issue) => `${issue.path.length === 0 ? "" : `${issue.path.map(String).join(".")}: `}${issue.message}`,
  );
  throw new RateLimitConfigError(`invalid ${source}:\n  ${problems.join("\n  ")}`);
}

/**
 * Reads the rate-limit file (`LATCHKEY_RATE_LIMITS`).
 *
 * @throws RateLimitConfigError when it cannot be read, is not YAML, or is invalid.
 */
export function loadRateLimits(path: string): RateLimitFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new RateLimitConfigError(`LATCHKEY_RATE_LIMITS: cannot read ${path}: ${(error as Error).message}`);
  }
  if (text.length > MAX_FILE_BYTES)
    throw new RateLimitConfigError(`LATCHKEY_RATE_LIMITS: ${path} is larger than 1 MiB`);
  let document: unknown;
  try {
    document = parseYaml(text, { maxAliasCount: 100 });
  } catch (error) {
    throw new RateLimitConfigError(
      `LATCHKEY_RATE_LIMITS: ${path} is not valid YAML: ${(error as Error).message}`,
    );
  }
  return parseRateLimits(document, `LATCHKEY_RATE_LIMITS ${path}`);
}
