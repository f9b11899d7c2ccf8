import { scopeListError } from "@latchkey/token";
import { z } from "zod";
import { ruleRateLimitSchema } from "../rate-limit/rate-limit-schema.js";

const METHOD = /^[A-Z]{1,20}$/;

const scopes = z
  .array(z.string())
  .default([])
  .superRefine((value, ctx) => {
    const error = scopeListError(value);
    if (error !== undefined) ctx.addIssue({ code: "custom", message: error });
  });

const methods = z
  .union([z.string(), z.array(z.string()).min(1, "must name at least one method")])
  .transform((value) => (Array.isArray(value) ? value : [value]).map((method) => method.toUpperCase()))
  .superRefine((value, ctx) => {
    for (const method of value) {
      if (method !== "*" && !METHOD.test(method)) {
        ctx.addIssue({ code: "custom", message: `"${method}" is not an HTTP method (or "*")` });
      }
    }
  });

const paths = z
  .union([z.string(), z.array(z.string()).min(1, "must name at least one path")])
  .transform((value) => (Array.isArray(value) ? value : [value]));

// Forward X-HTTP-Method-Override (and X-HTTP-Method, X-Method-Override) to the app, for apps that
// tunnel methods through POST; the named method must match this same rule, or the request is refused.
const passMethodOverride = z.boolean().default(false);

const publicAccess = {
  kind: z.literal("public"),
  // Forward the caller's credential headers to the app instead of removing them.
  passCredential: z.boolean().default(false),
  passMethodOverride,
  // This route's own `token` query parameter is not a Latchkey key: pass it to the app
  // (by default a `token` parameter is removed from every URL before it goes upstream).
  keepQueryToken: z.boolean().default(false),
};
const keyAccess = {
  kind: z.literal("key"),
  // Scopes the key must hold; none means any valid key.
  scopes,
  // Also accept `?token=` (EventSource cannot set headers); removed before forwarding.
  allowQueryToken: z.boolean().default(false),
  passCredential: z.boolean().default(false),
  passMethodOverride,
};
const secretAccess = {
  kind: z.literal("secret"),
  // Environment variable holding the shared secret; read once at start.
  secretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name"),
  allowQueryToken: z.boolean().default(false),
  passCredential: z.boolean().default(false),
  passMethodOverride,
};

/** How a route is protected. */
export const accessSchema = z.discriminatedUnion(
  "kind",
  [z.object(publicAccess).strict(), z.object(keyAccess).strict(), z.object(secretAccess).strict()],
  { error: 'kind must be "public", "key" or "secret"' },
);

const match = {
  // A label for logs and error messages.
  name: z.string().min(1).max(100).optional(),
  // Methods this rule applies to; omitted or "*" means any. GET includes HEAD (an app answers HEAD
  // with its GET handler).
  methods: methods.optional(),
  // Path globs (`*` one segment, `**` any); `path` is a shorthand for one.
  paths: paths.optional(),
  path: z.string().optional(),
  // Limits on this route: a list of `{ name, limit, window }` or `{ tier: <name> }` from the
  // rate-limit file. Counted per key on key routes, per client address on public routes.
  rateLimit: ruleRateLimitSchema.optional(),
};

/** One rule of a policy file. */
export const ruleSchema = z
  .discriminatedUnion(
    "kind",
    [
      z.object({ ...match, ...publicAccess }).strict(),
      z.object({ ...match, ...keyAccess }).strict(),
      z.object({ ...match, ...secretAccess }).strict(),
    ],
    { error: 'kind must be "public", "key" or "secret"' },
  )
  .superRefine((rule, ctx) => {
    if (rule.path === undefined && rule.paths === undefined) {
      ctx.addIssue({ code: "custom", message: "needs path or paths" });
    }
    if (rule.path !== undefined && rule.paths !== undefined) {
      ctx.addIssue({ code: "custom", message: "has both path and paths; use one" });
    }
  });

/** The presets: the two Opengram modes. */
export const PRESET_NAMES = ["reads-public", "all-private"] as const;

/** One of {@link PRESET_NAMES}. */
export type PresetName = (typeof PRESET_NAMES)[number];

/**
 * A policy file. Rules are tried in order and the first match wins; then the
 * preset's rules; then `default` (or the preset's default, or `key` with
 * `read` when neither is given).
 */
export const policyFileSchema = z
  .object({
    version: z.literal(1).default(1),
    preset: z.enum(PRESET_NAMES).optional(),
    // Off by default: many frameworks route case-insensitively, and a private `/admin` rule must
    // also catch `/ADMIN`.
    caseSensitive: z.boolean().default(false),
    default: accessSchema.optional(),
    rules: z.array(ruleSchema).max(1000).default([]),
  })
  .strict();

/** A rule as written in the file, after defaults. */
export type PolicyRuleInput = z.output<typeof ruleSchema>;

/** A route's protection as written in the file, after defaults. */
export type AccessInput = z.output<typeof accessSchema>;

/** A policy file after validation. */
export type PolicyFile = z.output<typeof policyFileSchema>;
