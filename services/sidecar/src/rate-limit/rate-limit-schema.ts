import { z } from "zod";

/** Shortest window: below a second the sync interval is most of the window and the bound means little. */
export const MIN_WINDOW_MS = 1_000;
/** Longest window: longer budgets are quotas (usage-limited keys), counted exactly at the token-service. */
export const MAX_WINDOW_MS = 86_400_000;
/** Largest limit: far above any request rate, and exact in a double. */
export const MAX_LIMIT = 1_000_000_000;
/** Limits in one list (a key, a tier, a rule): each one is counted on every request. */
export const MAX_LIMITS_PER_LIST = 8;

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const WINDOW = /^([1-9][0-9]{0,8})(ms|s|m|h|d)$/;
/** Limit and tier names: they appear in `RateLimit` headers as structured-field strings and in NATS messages. */
export const LIMIT_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/**
 * Parses a window such as `10s`, `1m`, `5m`, `1h`, `1d` (or a number of
 * milliseconds) into milliseconds; undefined unless it is whole seconds from 1 s to 1 d.
 *
 * @example
 * ```ts
 * parseWindow("5m"); // 300000
 * ```
 */
export function parseWindow(value: string | number): number | undefined {
  let ms: number;
  if (typeof value === "number") ms = value;
  else {
    const match = WINDOW.exec(value.trim());
    if (match === null) return undefined;
    ms = Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  }
  // Whole seconds: `RateLimit-Policy` states the window as an integer `w`.
  return Number.isInteger(ms) && ms % 1_000 === 0 && ms >= MIN_WINDOW_MS && ms <= MAX_WINDOW_MS
    ? ms
    : undefined;
}

/** A named window as written: `{ name: hourly, limit: 1000, window: 1h }`. */
export const rateLimitSchema = z
  .object({
    name: z.string().regex(LIMIT_NAME, "must be 1-32 of a-z, 0-9, _ and -, starting with a letter or digit"),
    limit: z
      .number()
      .int("must be a whole number")
      .min(1, "must be at least 1 (to refuse a route, use the policy)")
      .max(MAX_LIMIT, `must be at most ${MAX_LIMIT}`),
    window: z.union([z.string(), z.number()]).transform((value, ctx) => {
      const ms = parseWindow(value);
      if (ms === undefined) {
        ctx.addIssue({
          code: "custom",
          message: `must be whole seconds such as 10s, 1m, 1h, from 1s to 1d (got ${JSON.stringify(value)})`,
        });
        return z.NEVER;
      }
      return ms;
    }),
  })
  .strict();

/** A limit after validation: the window in milliseconds. */
export interface RateLimitSpec {
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
}

/** A list of limits with distinct names (each name is one `RateLimit` header item). */
export const rateLimitListSchema = z
  .array(rateLimitSchema)
  .min(1, "must name at least one limit")
  .max(MAX_LIMITS_PER_LIST, `may hold at most ${MAX_LIMITS_PER_LIST} limits`)
  .superRefine((limits, ctx) => {
    const seen = new Set<string>();
    for (const [index, limit] of limits.entries()) {
      if (seen.has(limit.name)) {
        ctx.addIssue({
          code: "custom",
          path: [index, "name"],
          message: `duplicate limit name "${limit.name}"`,
        });
      }
      seen.add(limit.name);
    }
  })
  .transform((limits): readonly RateLimitSpec[] =>
    limits.map(({ name, limit, window }) => Object.freeze({ name, limit, windowMs: window })),
  );

const BUILT_IN_SCOPES = ["read", "write", "admin"] as const;

/**
 * The rate-limit file (`LATCHKEY_RATE_LIMITS`): a seed's tier table is one
 * `tiers` block. A key's own limits (set at Issue/Update) come first; else its
 * tier's (the key's `tier` metadata); else its highest built-in scope's.
 */
export const rateLimitFileSchema = z
  .object({
    version: z.literal(1).default(1),
    // Limits by tier name; a key names its tier in its `tier` metadata (unverified, verified, connected…).
    tiers: z
      .record(z.string().regex(LIMIT_NAME, "tier names are 1-32 of a-z, 0-9, _ and -"), rateLimitListSchema)
      .default({}),
    // Limits of a key with no tier, by its highest built-in scope (admin, write, read).
    scopes: z
      .object(Object.fromEntries(BUILT_IN_SCOPES.map((scope) => [scope, rateLimitListSchema.optional()])))
      .strict()
      .default({}),
    // The tier of a key whose `tier` names none in `tiers` (otherwise it gets its scope's limits).
    unknownTier: z.string().optional(),
  })
  .strict()
  .superRefine((file, ctx) => {
    if (file.unknownTier !== undefined && file.tiers[file.unknownTier] === undefined) {
      ctx.addIssue({ code: "custom", path: ["unknownTier"], message: `names no tier in tiers` });
    }
  });

/** The rate-limit file after validation. */
export type RateLimitFile = z.output<typeof rateLimitFileSchema>;

/**
 * A policy rule's `rateLimit`: its own limits, or a tier from the rate-limit
 * file. Counted per key on key routes, per client address on public routes.
 */
export const ruleRateLimitSchema = z.union([
  rateLimitListSchema,
  z.object({ tier: z.string().regex(LIMIT_NAME, "tier names are 1-32 of a-z, 0-9, _ and -") }).strict(),
]);

/** A rule's `rateLimit` after validation. */
export type RuleRateLimit = z.output<typeof ruleRateLimitSchema>;
