import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { RuleRateLimit } from "../rate-limit/rate-limit-schema.js";
import { notAcceptedHere, type Refusal } from "../refusal.js";
import { compilePathGlob, OWNER_PARAMETER } from "./path-glob.js";
import {
  type AccessInput,
  type PolicyFile,
  type PolicyRuleInput,
  policyFileSchema,
  TEAM_ID,
} from "./policy-schema.js";
import { PRESETS } from "./presets.js";
import { compileHostPattern, type HostPattern } from "./request-host.js";
import { resolveSecrets, type SecretDigests } from "./secret-match.js";

/** What a `key` or `optional-key` route asks of a key beyond verifying. */
export interface KeyRequirements {
  readonly scopes: readonly string[];
  readonly allowQueryToken: boolean;
  /** Teams (`team_…`) the key must belong to one of; undefined means any. */
  readonly teams: ReadonlySet<string> | undefined;
  /** Environment labels the key must carry one of; undefined means any. */
  readonly environments: ReadonlySet<string> | undefined;
  /**
   * On a route bound to teams or environments, the one answer to every
   * credential that is not a usable key of them (see `notAcceptedHere`);
   * undefined on a route that binds neither.
   */
  readonly notAccepted: Refusal | undefined;
  /** Whether the key's owner must equal the path's `{owner}` segment (key routes only). */
  readonly ownerFromPath: boolean;
  /** Whether a keychain's secret (a key with `keychainId`) is accepted as well. */
  readonly keychains: boolean;
}

/** A route's protection, ready to act on. */
export type RouteAccess = (
  | { readonly kind: "public"; readonly allowQueryToken: false }
  | ({ readonly kind: "key" } & KeyRequirements)
  /** No credential: forwarded anonymously. A credential that is present must verify, as on `key`. */
  | ({ readonly kind: "optional-key" } & KeyRequirements)
  | {
      readonly kind: "secret";
      /** SHA-256 digests of the secrets accepted (see `secret-match.ts`). */
      readonly secrets: SecretDigests;
      readonly allowQueryToken: boolean;
    }
) & {
  /** Whether the credential headers go upstream. */
  readonly passCredential: boolean;
  /** Whether method-override headers go upstream (when the method they name matches the same rule). */
  readonly passMethodOverride: boolean;
  /** Whether a `token` query parameter goes upstream (public routes whose own parameter it is). */
  readonly keepQueryToken: boolean;
};

/** A compiled rule. */
export interface RouteRule {
  /** `rules[3] ("cron")`, `preset reads-public`, or `default`: for logs. */
  readonly label: string;
  /** Upper-case methods; undefined means any. */
  readonly methods: ReadonlySet<string> | undefined;
  readonly patterns: readonly RegExp[];
  /** Host patterns, one of which the request's host must match; undefined means any host. */
  readonly hosts: readonly HostPattern[] | undefined;
  readonly access: RouteAccess;
  /** The rule's `rateLimit` as written (a tier is resolved by the rate limiter); undefined when none. */
  readonly rateLimit: RuleRateLimit | undefined;
}

/** A compiled policy: ordered rules, then a default. */
export interface Policy {
  readonly rules: readonly RouteRule[];
  readonly fallback: RouteRule;
  /** Things that are allowed but probably not meant, for the start-up log (a rule per line). */
  readonly warnings: readonly string[];
  /** Whether any rule names a host: only then is the request's host read (and checked). */
  readonly matchesHosts: boolean;
  /**
   * The first rule matching `method`, a normalized match path and the request's normalized host
   * name (see `normalizeHost`; undefined when the request names none), or the default.
   */
  match(method: string, matchPath: string, host?: string): RouteRule;
}

/** Thrown when a policy file is invalid; each line names the rule at fault (`rules[3]: …`). */
export class PolicyError extends Error {
  override readonly name = "PolicyError";
  constructor(
    message: string,
    /** One entry per problem. */
    readonly problems: readonly string[],
  ) {
    super(message);
  }
}

/** Options of {@link compilePolicy}. */
export interface CompilePolicyOptions {
  /** Where secrets are read from (default `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
  /** Names the policy in error messages, e.g. its file path. */
  readonly source?: string;
}

const MAX_POLICY_BYTES = 1024 * 1024;

/**
 * Validates and compiles a parsed policy document. Secrets named by `secret`
 * rules are read from the environment now, once.
 *
 * @example
 * ```ts
 * const policy = compilePolicy({ preset: "reads-public", rules: [{ path: "/cron/**", kind: "secret", secretEnv: "CRON_SECRET" }] });
 * policy.match("POST", "/cron/daily").access.kind; // "secret"
 * ```
 * @throws PolicyError naming each bad rule.
 */
export function compilePolicy(document: unknown, options: CompilePolicyOptions = {}): Policy {
  const env = options.env ?? process.env;
  const source = options.source ?? "policy";
  const parsed = policyFileSchema.safeParse(document ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${where(document, issue.path)}${issue.message}`);
    throw new PolicyError(`invalid ${source}:\n  ${problems.join("\n  ")}`, problems);
  }
  const file = parsed.data;
  const preset = file.preset === undefined ? undefined : PRESETS[file.preset];
  const problems: string[] = [];
  const warnings: string[] = [];
  const binding: Binding = {
    teams: policyTeams(file, env, problems),
    environments: file.environments === undefined ? undefined : new Set(file.environments),
  };
  const compile = (rule: PolicyRuleInput, label: string): RouteRule => {
    const patterns: RegExp[] = [];
    const sourcePatterns = rule.paths ?? (rule.path === undefined ? [] : [rule.path]);
    let owned = 0;
    for (const pattern of sourcePatterns) {
      const glob = compilePathGlob(pattern, { caseSensitive: file.caseSensitive });
      if (glob.ok) {
        patterns.push(glob.regex);
        if (glob.hasOwner) owned++;
      } else problems.push(`${label}: ${glob.message}`);
    }
    // A rule binds keys to their owner on every path or on none: half-bound rules are a bypass.
    if (owned > 0 && rule.kind !== "key") {
      problems.push(`${label}: ${OWNER_PARAMETER} needs kind "key" (the key's owner must equal it)`);
    } else if (owned > 0 && owned < sourcePatterns.length) {
      problems.push(`${label}: ${OWNER_PARAMETER} must be in every path of the rule or in none`);
    }
    const hosts: HostPattern[] = [];
    for (const pattern of rule.host ?? []) {
      const compiled = compileHostPattern(pattern);
      if (compiled.ok) hosts.push(compiled.pattern);
      else problems.push(`${label}: ${compiled.message}`);
    }
    // HEAD is GET without the body, and apps answer it with their GET handler: a rule for GET covers it.
    const methods =
      rule.methods?.includes("*") === false
        ? new Set(rule.methods.includes("GET") ? [...rule.methods, "HEAD"] : rule.methods)
        : undefined;
    return {
      label,
      methods,
      patterns,
      hosts: rule.host === undefined ? undefined : hosts,
      access: compileAccess(rule, label, { env, problems, warnings, ownerFromPath: owned > 0, binding }),
      rateLimit: rule.rateLimit,
    };
  };
  const rules = file.rules.map((rule, index) =>
    compile(rule, `rules[${index}]${rule.name === undefined ? "" : ` (${JSON.stringify(rule.name)})`}`),
  );
  for (const rule of preset?.rules ?? []) rules.push(compile(rule, `preset ${file.preset}`));
  const fallbackAccess = file.default ?? preset?.default ?? PRESETS["all-private"].default;
  const fallback: RouteRule = {
    label: "default",
    methods: undefined,
    patterns: [],
    hosts: undefined,
    access: compileAccess(fallbackAccess, "default", {
      env,
      problems,
      warnings,
      ownerFromPath: false,
      binding,
    }),
    rateLimit: undefined,
  };
  if (problems.length > 0) throw new PolicyError(`invalid ${source}:\n  ${problems.join("\n  ")}`, problems);
  const match = (method: string, matchPath: string, host?: string): RouteRule => {
    for (const rule of rules) {
      if (rule.methods !== undefined && !rule.methods.has(method)) continue;
      if (
        rule.hosts !== undefined &&
        (host === undefined || !rule.hosts.some((each) => each.matches(host)))
      ) {
        continue;
      }
      for (const pattern of rule.patterns) if (pattern.test(matchPath)) return rule;
    }
    return fallback;
  };
  const sources = file.rules.map((rule) => rule.paths ?? (rule.path === undefined ? [] : [rule.path]));
  return {
    rules,
    fallback,
    warnings: [...warnings, ...fallThroughWarnings(rules, sources, match)],
    matchesHosts: rules.some((rule) => rule.hosts !== undefined),
    match,
  };
}

// Methods a method-restricted rule is checked against. OPTIONS is among them: many apps answer it
// with whatever handler the path has. (Where OPTIONS must stay public for CORS preflights, which
// carry no credential, the warning is expected.)
const CHECKED_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/**
 * Warns about a key or secret rule limited to some methods whose paths, with
 * another method, fall through to a public rule: `GET /events` needs a key
 * while `POST /events` is public is rarely what was meant, and an app that
 * ignores the method serves the same handler to both.
 */
function fallThroughWarnings(
  rules: readonly RouteRule[],
  sources: readonly (readonly string[])[],
  match: (method: string, matchPath: string, host?: string) => RouteRule,
): string[] {
  const warnings: string[] = [];
  rules.forEach((rule, index) => {
    if (rule.methods === undefined || rule.access.kind === "public" || rule.access.kind === "optional-key")
      return;
    for (const pattern of sources[index] ?? []) {
      // A concrete path the glob matches: `*` as one segment's text, `**` as nothing.
      const sample = pattern.replace(/\/\*\*(?=\/|$)/g, "").replace(/\*/g, "x") || "/";
      // A host the rule matches, for a rule limited to hosts: `*` as one label's text.
      const host = rule.hosts?.[0]?.source.replace(/^\*/, "x");
      const open = CHECKED_METHODS.filter(
        (method) => !rule.methods?.has(method) && match(method, sample, host).access.kind === "public",
      );
      if (open.length > 0) {
        warnings.push(
          `${rule.label}: ${pattern} needs a ${rule.access.kind} for ${[...rule.methods].join(", ")} but is public for ${open.join(", ")}`,
        );
      }
    }
  });
  return warnings;
}

/**
 * Reads and compiles the policy file at `path`; without a path, the
 * `all-private` preset (every route needs a key with `read`).
 *
 * @throws PolicyError when the file cannot be read or is invalid.
 */
export function loadPolicy(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Policy {
  if (path === undefined) return compilePolicy({ preset: "all-private" }, { env });
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const problem = `cannot read ${path}: ${(error as Error).message}`;
    throw new PolicyError(`LATCHKEY_POLICY: ${problem}`, [problem]);
  }
  if (text.length > MAX_POLICY_BYTES) {
    throw new PolicyError(`LATCHKEY_POLICY: ${path} is larger than 1 MiB`, ["too large"]);
  }
  let document: unknown;
  try {
    document = parseYaml(text, { maxAliasCount: 100 });
  } catch (error) {
    const problem = `${path} is not valid YAML: ${(error as Error).message}`;
    throw new PolicyError(`LATCHKEY_POLICY: ${problem}`, [problem]);
  }
  return compilePolicy(document, { env, source: `policy ${path}` });
}

/** The policy-level `teams` and `environments`: where keys may be used unless a rule says otherwise. */
interface Binding {
  readonly teams: ReadonlySet<string> | undefined;
  readonly environments: ReadonlySet<string> | undefined;
}

/** What {@link compileAccess} reports into, what the rule's paths decided, and the policy's binding. */
interface AccessContext {
  readonly env: NodeJS.ProcessEnv;
  readonly problems: string[];
  readonly warnings: string[];
  readonly ownerFromPath: boolean;
  readonly binding: Binding;
}

/**
 * The policy-level teams: from `teamsEnv` when that variable is set (team ids,
 * comma-separated), else `teams`. A `teamsEnv` whose variable is unset, with
 * no `teams` to fall back on, is a problem: a binding the operator asked for
 * must not silently become "any team".
 */
function policyTeams(
  file: PolicyFile,
  env: NodeJS.ProcessEnv,
  problems: string[],
): ReadonlySet<string> | undefined {
  const variable = file.teamsEnv;
  const value = variable === undefined ? undefined : env[variable]?.trim();
  if (variable === undefined || value === undefined || value === "") {
    if (variable !== undefined && file.teams === undefined) {
      problems.push(`teamsEnv: ${variable} is not set (and there is no teams list to fall back on)`);
    }
    return file.teams === undefined ? undefined : new Set(file.teams);
  }
  const ids = value.split(",").map((id) => id.trim());
  const bad = ids.filter((id) => !TEAM_ID.test(id));
  if (bad.length > 0 || ids.length > 100) {
    problems.push(
      `teamsEnv: ${variable} must be 1 to 100 team ids (team_ followed by 22 letters or digits), comma-separated`,
    );
    return undefined;
  }
  return new Set(ids);
}

function compileAccess(access: AccessInput, label: string, context: AccessContext): RouteAccess {
  if (access.kind === "public") {
    return {
      kind: "public",
      allowQueryToken: false,
      passCredential: access.passCredential,
      passMethodOverride: access.passMethodOverride,
      keepQueryToken: access.keepQueryToken,
    };
  }
  if (access.kind === "key" || access.kind === "optional-key") {
    // A rule's own list replaces the policy's, dimension by dimension.
    const teams = access.teams === undefined ? context.binding.teams : new Set(access.teams);
    const environments =
      access.environments === undefined ? context.binding.environments : new Set(access.environments);
    return {
      kind: access.kind,
      scopes: access.scopes,
      teams,
      environments,
      notAccepted:
        teams === undefined && environments === undefined
          ? undefined
          : notAcceptedHere(teams !== undefined, environments),
      ownerFromPath: context.ownerFromPath,
      keychains: access.keychains,
      allowQueryToken: access.allowQueryToken,
      passCredential: access.passCredential,
      passMethodOverride: access.passMethodOverride,
      keepQueryToken: false,
    };
  }
  return {
    kind: "secret",
    secrets: resolveSecrets(access, label, context),
    allowQueryToken: access.allowQueryToken,
    passCredential: access.passCredential,
    passMethodOverride: access.passMethodOverride,
    keepQueryToken: false,
  };
}

/** `rules[3] ("cron"): scopes: ` for an issue at ["rules", 3, "scopes"]. */
function where(document: unknown, path: readonly PropertyKey[]): string {
  if (path.length === 0) return "";
  const [head, index, ...rest] = path;
  if (head === "rules" && typeof index === "number") {
    const raw = (document as { rules?: unknown[] } | undefined)?.rules?.[index];
    const name = (raw as { name?: unknown } | undefined)?.name;
    const label = `rules[${index}]${typeof name === "string" ? ` (${JSON.stringify(name)})` : ""}`;
    return rest.length === 0 ? `${label}: ` : `${label}: ${rest.map(String).join(".")}: `;
  }
  return `${path.map(String).join(".")}: `;
}
