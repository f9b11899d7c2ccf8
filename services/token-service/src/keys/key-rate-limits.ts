import { create } from "@bufbuild/protobuf";
import { type RateLimit, RateLimitSchema } from "@latchkey/proto";
import type { StoredRateLimit } from "../db/tables.js";
import { invalidArgument } from "../rpc/validate.js";

/** Limits per key; each is counted on every counted Verify and every sidecar request. */
export const MAX_KEY_RATE_LIMITS = 8;
const MAX_LIMIT = 1_000_000_000n;
const MAX_WINDOW_SECONDS = 86_400n;
/** The same names the sidecar's rate-limit file accepts (they appear in `RateLimit` headers). */
const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/**
 * Checks a key's rate limits from Issue/Update: at most 8, distinct names,
 * limits 1–1e9, windows of whole seconds from 1 s to 1 day.
 */
export function requireRateLimits(limits: readonly RateLimit[], field = "rate_limits"): StoredRateLimit[] {
  if (limits.length > MAX_KEY_RATE_LIMITS)
    throw invalidArgument(field, `at most ${MAX_KEY_RATE_LIMITS} limits`);
  const seen = new Set<string>();
  return limits.map((limit, index) => {
    const at = `${field}[${index}]`;
    if (!NAME.test(limit.name)) {
      throw invalidArgument(
        `${at}.name`,
        "must be 1–32 of a-z, 0-9, _ and -, starting with a letter or digit",
      );
    }
    if (seen.has(limit.name)) throw invalidArgument(`${at}.name`, `duplicate name "${limit.name}"`);
    seen.add(limit.name);
    if (limit.limit < 1n || limit.limit > MAX_LIMIT)
      throw invalidArgument(`${at}.limit`, "must be 1 to 1000000000");
    const window = limit.window;
    if (window === undefined) throw invalidArgument(`${at}.window`, "is required");
    if (window.nanos !== 0 || window.seconds < 1n || window.seconds > MAX_WINDOW_SECONDS) {
      throw invalidArgument(`${at}.window`, "must be whole seconds from 1 s to 1 day");
    }
    return { name: limit.name, limit: Number(limit.limit), windowSeconds: Number(window.seconds) };
  });
}

/** Checks a tier name: "" for none, else 1–32 of a-z, 0-9, `_`, `-`. */
export function requireTier(value: string, field = "tier"): string | null {
  if (value === "") return null;
  if (!NAME.test(value)) throw invalidArgument(field, "must be 1–32 of a-z, 0-9, _ and -");
  return value;
}

/** Stored limits as the API returns them. */
export function rateLimitsToProto(stored: readonly StoredRateLimit[] | null | undefined): RateLimit[] {
  return (stored ?? []).map((limit) =>
    create(RateLimitSchema, {
      name: limit.name,
      limit: BigInt(limit.limit),
      window: { seconds: BigInt(limit.windowSeconds), nanos: 0 },
    }),
  );
}
