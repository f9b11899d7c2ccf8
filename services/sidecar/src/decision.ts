import type { CredentialSource } from "./credentials.js";
import type { VerifiedKey } from "./key-checker.js";
import type { RouteRule } from "./policy/policy.js";
import type { Refusal } from "./refusal.js";

/**
 * What was decided, as counted in `latchkey_sidecar_decisions_total{decision}`
 * and written to the access log.
 */
export type DecisionLabel =
  | "public"
  | "anonymous"
  | "key"
  | "secret"
  | "bad_request"
  | "no_credential"
  | "invalid_credential"
  | "insufficient_scope"
  | "keychain_not_allowed"
  | "wrong_team"
  | "wrong_environment"
  | "wrong_owner"
  | "rate_limited"
  | "usage_exceeded"
  | "unavailable"
  | "https_required"
  | "not_checked";

/** Every {@link DecisionLabel}, for pre-creating metric series. */
export const DECISION_LABELS: readonly DecisionLabel[] = [
  "public",
  "anonymous",
  "key",
  "secret",
  "bad_request",
  "no_credential",
  "invalid_credential",
  "insufficient_scope",
  "keychain_not_allowed",
  "wrong_team",
  "wrong_environment",
  "wrong_owner",
  "rate_limited",
  "usage_exceeded",
  "unavailable",
  "https_required",
  "not_checked",
];

/** A decision on one request. `allow` false carries the refusal to send in enforce mode. */
export interface Decision {
  readonly allow: boolean;
  readonly label: DecisionLabel;
  readonly refusal: Refusal | undefined;
  /** The matched rule; undefined when the path itself was refused. */
  readonly rule: RouteRule | undefined;
  /** Path to forward: the canonical one, or the raw one when normalization refused it. */
  readonly path: string;
  /** Query to forward: `token` parameters removed when the route takes them as a credential. */
  readonly query: string;
  /** The verified key (also for insufficient scope, for the log). */
  readonly key: VerifiedKey | undefined;
  /** The credential, kept for re-checking live connections; never logged. */
  readonly credential: string | undefined;
  readonly credentialSource: CredentialSource | undefined;
  /** Whether the credential headers go upstream. */
  readonly passCredential: boolean;
  /** Whether method-override headers go upstream (the rule allows them, and the named method matches it too). */
  readonly passMethodOverride: boolean;
  /** Flat `RateLimit-Policy`/`RateLimit` headers for the client's response; undefined when no limit applies. */
  readonly rateLimitHeaders: readonly string[] | undefined;
}

/** What {@link decision} is given: a decision without the fields it derives from the rule. */
export interface DecisionFields {
  readonly allow: boolean;
  readonly label: DecisionLabel;
  readonly refusal?: Refusal;
  readonly rule?: RouteRule;
  readonly path: string;
  readonly query: string;
  readonly key?: VerifiedKey;
  readonly credential?: string;
  readonly credentialSource?: CredentialSource;
}

/**
 * Every decision is built here, so they all share one object shape (one hidden
 * class on the hot path); what the route passes upstream is derived from its rule.
 */
export function decision(fields: DecisionFields): Decision {
  const { rule } = fields;
  return {
    allow: fields.allow,
    label: fields.label,
    refusal: fields.refusal,
    rule,
    path: fields.path,
    query: fields.query,
    key: fields.key,
    credential: fields.credential,
    credentialSource: fields.credentialSource,
    passCredential: rule === undefined ? false : rule.access.passCredential,
    passMethodOverride: rule === undefined ? false : rule.access.passMethodOverride,
    rateLimitHeaders: undefined,
  };
}

/**
 * The decision with its rate-limit headers, and turned into a `rate_limited`
 * refusal when `refusal` is given (see `rate-limit/rate-limiter.ts`).
 */
export function withRateLimit(
  decided: Decision,
  rateLimitHeaders: readonly string[],
  refusal: Refusal | undefined,
): Decision {
  return {
    allow: refusal === undefined,
    label: refusal === undefined ? decided.label : "rate_limited",
    refusal: refusal ?? decided.refusal,
    rule: decided.rule,
    path: decided.path,
    query: decided.query,
    key: decided.key,
    credential: decided.credential,
    credentialSource: decided.credentialSource,
    passCredential: decided.passCredential,
    passMethodOverride: decided.passMethodOverride,
    rateLimitHeaders,
  };
}

/** The decision in `disabled` mode: nothing checked, everything forwarded as it came. */
export function notChecked(rawPath: string, query: string): Decision {
  return {
    ...decision({ allow: true, label: "not_checked", path: rawPath, query }),
    passCredential: true,
    passMethodOverride: true,
  };
}
