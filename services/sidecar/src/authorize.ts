import { ROOT_CONTEXT, type Span, trace } from "@opentelemetry/api";
import { type CredentialSource, extractCredential, splitQueryToken } from "./credentials.js";
import { type Decision, type DecisionLabel, decision } from "./decision.js";
import type { KeyChecker, VerifyOutcome } from "./key-checker.js";
import { keyBindingRefusal, placementRefusal } from "./policy/key-binding.js";
import { isCanonicalPath, normalizePath } from "./policy/normalize-path.js";
import type { Policy, RouteRule } from "./policy/policy.js";
import { decideHost, type HostFacts } from "./policy/request-host.js";
import { secretMatches } from "./policy/secret-match.js";
import {
  badHost,
  badPath,
  CONFLICTING_CREDENTIALS,
  INVALID_CREDENTIAL,
  insufficientScope,
  METHOD_OVERRIDE_NOT_ALLOWED,
  MISSING_CREDENTIAL,
  QUERY_TOKEN_NOT_ACCEPTED,
  QUERY_TOKEN_NOT_REMOVABLE,
  type Refusal,
  rateLimited,
  UNAVAILABLE,
  UNSTRIPPABLE_HEADERS,
  usageExceeded,
} from "./refusal.js";

/** The parts of a request a decision is made from (the host parts are read only when rules name hosts). */
export interface RequestFacts extends HostFacts {
  readonly method: string;
  /** The path of the request target, before any `?`. */
  readonly rawPath: string;
  /** The query without its `?`; "" when there is none. */
  readonly query: string;
  readonly bearer: readonly string[];
  readonly apiKey: readonly string[];
  /** The method a method-override header names ("" when several disagree); undefined when none was sent. */
  readonly methodOverride?: string | undefined;
  /** Whether the client sent headers proxy mode strips (see `ScannedRequest.strippedSensitive`). */
  readonly strippedSensitive?: boolean;
  /**
   * True when the app receives the request's path as the client sent it,
   * because a proxy in front forwards it and only asks the sidecar
   * (forward-auth, Envoy ext_authz): a path that is not in canonical form is
   * refused instead of rewritten.
   */
  readonly pathAsSent?: boolean;
  /**
   * True when the proxy in front cannot remove anything either (nginx
   * `auth_request`, Traefik ForwardAuth): headers proxy mode strips, a method
   * override it would drop and a query token it would take out are refused.
   * Envoy's ext_authz can remove headers and query parameters, so it is false there.
   */
  readonly headersAsSent?: boolean;
  /**
   * True when the proxy in front forwards the query as sent too (Traefik ForwardAuth; nginx's
   * example removes one `token` parameter): a `token` parameter would reach the app, so it is
   * refused on every route but a public one that keeps it.
   */
  readonly queryAsSent?: boolean;
  /**
   * Gives the signal that aborts a lookup when the client leaves. Read only when
   * a lookup has to wait for the token-service, so the hit path allocates none.
   */
  readonly abortable?: { readonly signal: AbortSignal };
  /** The request's server span (tracing on): the parent of the Verify RPC's span on a cache miss. */
  readonly span?: Span | undefined;
}

/** Options of {@link createAuthorizer}. */
export interface AuthorizerOptions {
  readonly policy: Policy;
  readonly keyChecker: KeyChecker;
  readonly maxCredentialBytes: number;
}

/** Decides requests: synchronously when the answer is local, with a promise when it must wait. */
export type Authorize = (facts: RequestFacts) => Decision | Promise<Decision>;

/**
 * Builds the decision function shared by the proxy, the WebSocket upgrade path
 * and the forward-auth endpoint: normalize the path, match the policy, pick the
 * credential, then check it (public: nothing; secret: constant-time compare;
 * key: the verifier, from its cache synchronously when it can, then the
 * route's environment and owner; optional-key: anonymous without a credential,
 * else as key).
 */
export function createAuthorizer(options: AuthorizerOptions): Authorize {
  const { policy, keyChecker, maxCredentialBytes } = options;
  const verifyCached = keyChecker.verifyCached?.bind(keyChecker);

  return (facts) => {
    const normalized = normalizePath(facts.rawPath);
    if (!normalized.ok) {
      return decision({
        allow: false,
        label: "bad_request",
        refusal: badPath(normalized.reason),
        path: facts.rawPath,
        query: facts.query,
      });
    }
    // The app will read the raw path: decide only on one that every stack reads as the policy does.
    if (facts.pathAsSent === true && !isCanonicalPath(facts.rawPath, normalized.path)) {
      return decision({
        allow: false,
        label: "bad_request",
        refusal: badPath("not_canonical"),
        path: facts.rawPath,
        query: facts.query,
      });
    }
    let host: string | undefined;
    if (policy.matchesHosts) {
      const decided = decideHost(facts);
      if (!decided.ok) {
        return decision({
          allow: false,
          label: "bad_request",
          refusal: badHost(decided.reason),
          path: facts.rawPath,
          query: facts.query,
        });
      }
      host = decided.name;
    }
    const rule = policy.match(facts.method, normalized.matchPath, host);
    const access = rule.access;
    const path = normalized.path;
    let query = facts.query;
    let queryTokens: readonly string[] = NO_STRINGS;
    if (query !== "" && !access.keepQueryToken) {
      // A `token` parameter never reaches the app: a key in a URL ends up in its logs.
      const split = splitQueryToken(query);
      if (split.tokens.length > 0) {
        if (facts.queryAsSent === true) {
          return decision({
            allow: false,
            label: "bad_request",
            refusal: QUERY_TOKEN_NOT_REMOVABLE,
            rule,
            path,
            query,
          });
        }
        // The proxy in front removes one `token` parameter at most (the nginx example's map).
        if (
          facts.headersAsSent === true &&
          (split.tokens.length > 1 || !(access.kind !== "public" && access.allowQueryToken))
        ) {
          return decision({
            allow: false,
            label: "bad_request",
            refusal: QUERY_TOKEN_NOT_ACCEPTED,
            rule,
            path,
            query,
          });
        }
        query = split.rest;
        if (access.kind !== "public" && access.allowQueryToken) queryTokens = split.tokens;
      }
    }
    const carried = carriedRefusal(facts, rule, policy, normalized.matchPath, host);
    if (carried !== undefined) {
      return decision({ allow: false, label: "bad_request", refusal: carried, rule, path, query });
    }
    if (access.kind === "public") return decision({ allow: true, label: "public", rule, path, query });
    const credential = extractCredential(
      { bearer: facts.bearer, apiKey: facts.apiKey, query: queryTokens },
      maxCredentialBytes,
    );
    if (credential.kind === "none" && access.kind === "optional-key") {
      // No credential at all: forwarded without identity, limited per client address like public routes.
      return decision({ allow: true, label: "anonymous", rule, path, query });
    }
    if (credential.kind !== "ok") {
      const [label, refusal] = CREDENTIAL_REFUSALS[credential.kind];
      // On a bound route, an unusable credential gets the answer another team's key gets.
      const bound = credential.kind === "invalid" ? notAcceptedOn(rule) : undefined;
      return decision({ allow: false, label, refusal: bound ?? refusal, rule, path, query });
    }
    const { value, source } = credential;
    if (access.kind === "secret") {
      return secretMatches(access.secrets, value, Date.now())
        ? decision({
            allow: true,
            label: "secret",
            rule,
            path,
            query,
            credential: value,
            credentialSource: source,
          })
        : invalidCredential(rule, path, query, value, source);
    }
    const matchPath = normalized.matchPath;
    const cached = verifyCached?.(value, access.scopes);
    if (cached !== undefined) return fromOutcome(cached, rule, path, matchPath, query, value, source);
    return keyChecker
      .verify(value, {
        requiredScopes: access.scopes,
        signal: facts.abortable?.signal,
        traceContext: facts.span === undefined ? undefined : trace.setSpan(ROOT_CONTEXT, facts.span),
      })
      .then((outcome) => fromOutcome(outcome, rule, path, matchPath, query, value, source));
  };
}

function fromOutcome(
  outcome: VerifyOutcome,
  rule: RouteRule,
  path: string,
  matchPath: string,
  query: string,
  value: string,
  source: CredentialSource,
): Decision {
  if (outcome.ok) {
    // A valid key may still be refused for where it is used: another environment, another owner's path.
    const bound = keyBindingRefusal(rule, outcome.key, matchPath, path);
    return decision({
      allow: bound === undefined,
      label: bound?.label ?? "key",
      refusal: bound?.refusal,
      rule,
      path,
      query,
      key: outcome.key,
      credential: value,
      credentialSource: source,
    });
  }
  // A refusal that names the key: it is logged and its use is counted.
  const known = "key" in outcome ? outcome.key : undefined;
  const refusedKey = (label: DecisionLabel, refusal: Refusal) =>
    decision({
      allow: false,
      label,
      refusal,
      rule,
      path,
      query,
      key: known,
      credential: value,
      credentialSource: source,
    });
  // Another team's (or environment's) key is refused as not accepted here before its missing scope
  // or used-up budget could say that it exists.
  const misplaced = known === undefined ? undefined : placementRefusal(rule, known);
  if (misplaced !== undefined && outcome.code !== "UNAVAILABLE") {
    return refusedKey(misplaced.label, misplaced.refusal);
  }
  switch (outcome.code) {
    case "INSUFFICIENT_SCOPE":
      return refusedKey(
        "insufficient_scope",
        insufficientScope("scopes" in rule.access ? rule.access.scopes : []),
      );
    case "RATE_LIMITED":
      // The token-service's own limit names no key: on a bound route it cannot be placed in a team.
      return refusedKey(
        "rate_limited",
        known === undefined ? (notAcceptedOn(rule) ?? rateLimited()) : rateLimited(),
      );
    case "USAGE_EXCEEDED":
      return refusedKey("usage_exceeded", usageExceeded(outcome.key?.usageLimit?.refillsAt));
    case "UNAVAILABLE":
      return decision({
        allow: false,
        label: "unavailable",
        refusal: UNAVAILABLE,
        rule,
        path,
        query,
        credential: value,
        credentialSource: source,
      });
    default:
      // MALFORMED, NOT_FOUND, REVOKED, EXPIRED, DISABLED: one answer, so nobody learns which.
      return invalidCredential(rule, path, query, value, source);
  }
}

/** The route's answer to a credential it does not accept, when it binds teams or environments. */
function notAcceptedOn(rule: RouteRule): Refusal | undefined {
  return "notAccepted" in rule.access ? rule.access.notAccepted : undefined;
}

/**
 * A refusal for what a request carries beside its credential, or undefined: a
 * method override the rule does not pass on, or names a method another rule
 * decides; and in forward-auth, where nothing can be stripped, any header
 * proxy mode would strip.
 */
function carriedRefusal(
  facts: RequestFacts,
  rule: RouteRule,
  policy: Policy,
  matchPath: string,
  host: string | undefined,
): Refusal | undefined {
  const override = facts.methodOverride;
  if (override !== undefined) {
    if (rule.access.passMethodOverride) {
      // The app will run the named method: it must be one this same rule covers.
      if (!HTTP_METHOD.test(override) || policy.match(override, matchPath, host) !== rule) {
        return METHOD_OVERRIDE_NOT_ALLOWED;
      }
    } else if (facts.headersAsSent === true) return UNSTRIPPABLE_HEADERS;
  }
  if (facts.headersAsSent === true && facts.strippedSensitive === true) return UNSTRIPPABLE_HEADERS;
  return undefined;
}

/**
 * The one refusal for a credential that does not verify and for a wrong shared
 * secret, so no answer tells a caller whether a key exists: 401, or on a route
 * bound to teams or environments the 403 a key of another team gets.
 */
function invalidCredential(
  rule: RouteRule,
  path: string,
  query: string,
  credential: string,
  credentialSource: CredentialSource,
): Decision {
  return decision({
    allow: false,
    label: "invalid_credential",
    refusal: notAcceptedOn(rule) ?? INVALID_CREDENTIAL,
    rule,
    path,
    query,
    credential,
    credentialSource,
  });
}

/** What a credential that could not be used is refused as. */
const CREDENTIAL_REFUSALS: Readonly<
  Record<"none" | "conflict" | "invalid", readonly [DecisionLabel, Refusal]>
> = {
  none: ["no_credential", MISSING_CREDENTIAL],
  conflict: ["bad_request", CONFLICTING_CREDENTIALS],
  invalid: ["invalid_credential", INVALID_CREDENTIAL],
};

const NO_STRINGS: readonly string[] = [];
const HTTP_METHOD = /^[A-Z]{1,20}$/;
