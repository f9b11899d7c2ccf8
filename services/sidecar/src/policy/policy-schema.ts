import { ENVIRONMENT_PATTERN, scopeListError } from "@latchkey/token";
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
// Environment labels a key must carry one of (`[prod]`); omitted means any (or the policy's).
const environments = z
  .array(z.string().regex(ENVIRONMENT_PATTERN, "must be an environment label (a-z, 0-9, _, -; 1-32)"))
  .min(1, "must name at least one environment")
  .max(32)
  .optional();
/** A team id as the token-service makes them. */
export const TEAM_ID = /^team_[0-9A-Za-z]{22}$/;
// Teams (`team_…`) a key must belong to one of; omitted means any (or the policy's).
const teams = z
  .array(z.string().regex(TEAM_ID, "must be a team id (team_ followed by 22 letters or digits)"))
  .min(1, "must name at least one team")
  .max(100)
  .optional();
const keyAccess = {
  kind: z.literal("key"),
  // Scopes the key must hold; none means any valid key.
  scopes,
  // Where the key may be used: these replace the policy's own `teams`/`environments` on this rule.
  teams,
  environments,
  // Also accept `?token=` (EventSource cannot set headers); removed before forwarding.
  allowQueryToken: z.boolean().default(false),
  passCredential: z.boolean().default(false),
  passMethodOverride,
  // Also accept a keychain's secret (a key of kind keychain: no scopes). Off by default: a
  // keychain authenticates its holder to packages, not to every route that takes a key.
  keychains: z.boolean().default(false),
};
// No credential: forwarded anonymously (no identity headers). A credential that is present must
// verify (401 otherwise), and then the route acts as `key`.
const optionalKeyAccess = { ...keyAccess, kind: z.literal("optional-key") };
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const envName = z.string().regex(ENV_NAME, "must be an environment variable name");
// A secret written in the policy file: the environment variable, when set, wins over it.
const fileSecret = z.string().min(1).max(1024);
const secretAccess = {
  kind: z.literal("secret"),
  // Environment variable holding the shared secret; read once at start. Wins over `secret`.
  secretEnv: envName.optional(),
  // The secret in the file itself, used when `secretEnv` is not given or not set.
  secret: fileSecret.optional(),
  // A second secret accepted during a rotation window (the one being replaced), from the
  // environment (wins) or the file, until `previousSecretUntil` if given.
  previousSecretEnv: envName.optional(),
  previousSecret: fileSecret.optional(),
  previousSecretUntil: z.iso.datetime({ offset: true }).optional(),
  allowQueryToken: z.boolean().default(false),
  passCredential: z.boolean().default(false),
  passMethodOverride,
};

const KIND_ERROR = 'kind must be "public", "key", "optional-key" or "secret"';

/** Checks what a secret rule needs beyond its fields' shapes. */
function refineSecret(
  access: { kind: string } & Partial<Record<string, unknown>>,
  ctx: z.RefinementCtx,
): void {
  if (access.kind !== "secret") return;
  if (access.secretEnv === undefined && access.secret === undefined) {
    ctx.addIssue({ code: "custom", message: "a secret rule needs secretEnv or secret" });
  }
  if (
    access.previousSecretUntil !== undefined &&
    access.previousSecretEnv === undefined &&
    access.previousSecret === undefined
  ) {
    ctx.addIssue({
      code: "custom",
      message: "previousSecretUntil needs previousSecretEnv or previousSecret",
    });
  }
}

/** How a route is protected. */
export const accessSchema = z
  .discriminatedUnion(
    "kind",
    [
      z.object(publicAccess).strict(),
      z.object(keyAccess).strict(),
      z.object(optionalKeyAccess).strict(),
      z.object(secretAccess).strict(),
    ],
    { error: KIND_ERROR },
  )
  .superRefine(refineSecret);

const match = {
  // A label for logs and error messages.
  name: z.string().min(1).max(100).optional(),
  // Methods this rule applies to; omitted or "*" means any. GET includes HEAD (an app answers HEAD
  // with its GET handler).
  methods: methods.optional(),
  // Path globs (`*` one segment, `**` any); `path` is a shorthand for one.
  paths: paths.optional(),
  path: z.string().optional(),
  // Host names the request's host must match (one, or a list): `api.example.com`, or `*.pkg.example`
  // where `*` is one label. Matched case-insensitively, without the port or a trailing dot. A rule
  // with a host never matches a request without one. Omitted means any host.
  host: z
    .union([z.string(), z.array(z.string()).min(1, "must name at least one host").max(100)])
    .transform((value) => (Array.isArray(value) ? value : [value]))
    .optional(),
  // Limits on this route: a list of `{ name, limit, window }` or `{ tier: <name> }` from the
  // rate-limit file. Counted per key on key routes, per client address on public routes; on
  // optional-key routes they are the anonymous requests' limits, per client address (a request
  // with a key has its key's limits).
  rateLimit: ruleRateLimitSchema.optional(),
};

/** One rule of a policy file. */
export const ruleSchema = z
  .discriminatedUnion(
    "kind",
    [
      z.object({ ...match, ...publicAccess }).strict(),
      z.object({ ...match, ...keyAccess }).strict(),
      z.object({ ...match, ...optionalKeyAccess }).strict(),
      z.object({ ...match, ...secretAccess }).strict(),
    ],
    { error: KIND_ERROR },
  )
  .superRefine((rule, ctx) => {
    refineSecret(rule, ctx);
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
    // Binding (issue 13): on every key and optional-key rule (and the default), only keys of these
    // teams and environments are accepted, unless the rule names its own. `teamsEnv` reads the team
    // ids (comma-separated) from an environment variable at start, which wins over `teams` when set,
    // so one policy file can serve the sidecars of several teams.
    teams,
    teamsEnv: envName.optional(),
    environments,
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
