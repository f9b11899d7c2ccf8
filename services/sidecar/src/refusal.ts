import type { ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { PathRejection } from "./policy/normalize-path.js";

/** The `code` of a refusal body; also a stable value for dashboards. */
export type RefusalCode =
  | "invalid_request"
  | "unauthenticated"
  | "invalid_token"
  | "insufficient_scope"
  | "rate_limited"
  | "usage_exceeded"
  | "unavailable"
  | "bad_gateway"
  | "forbidden"
  | "https_required";

/** An answer the sidecar gives instead of forwarding. */
export interface Refusal {
  readonly status: number;
  readonly code: RefusalCode;
  readonly message: string;
  /** Extra headers, e.g. `WWW-Authenticate`, `Retry-After`. */
  readonly headers: readonly (readonly [string, string])[];
}

const REALM = 'Bearer realm="latchkey"';

/**
 * One message for every key that does not verify (malformed, unknown, revoked,
 * expired, disabled) and for a wrong shared secret, so no answer tells a caller
 * whether a key exists.
 */
export const INVALID_CREDENTIAL_MESSAGE =
  "The credential is missing, malformed, expired, revoked or unknown.";

/** 401 without an `error` parameter: the request carried no credential (RFC 6750 §3.1). */
export const MISSING_CREDENTIAL: Refusal = {
  status: 401,
  code: "unauthenticated",
  message: "This route needs a credential: Authorization: Bearer <key> or X-API-Key.",
  headers: [["www-authenticate", REALM]],
};

/** 401 `invalid_token`: the same answer for every credential that does not verify. */
export const INVALID_CREDENTIAL: Refusal = {
  status: 401,
  code: "invalid_token",
  message: INVALID_CREDENTIAL_MESSAGE,
  headers: [["www-authenticate", `${REALM}, error="invalid_token"`]],
};

/** 400: two different credentials in one request; the sidecar will not pick one. */
export const CONFLICTING_CREDENTIALS: Refusal = {
  status: 400,
  code: "invalid_request",
  message: "The request carries more than one credential; send exactly one.",
  headers: [["www-authenticate", `${REALM}, error="invalid_request"`]],
};

/** 503: the verifier could not decide (token-service unreachable, nothing cached); fail closed. */
export const UNAVAILABLE: Refusal = {
  status: 503,
  code: "unavailable",
  message: "The credential cannot be checked right now; retry shortly.",
  headers: [["retry-after", "2"]],
};

/** 502: the upstream app could not be reached or broke the response. */
export const BAD_GATEWAY: Refusal = {
  status: 502,
  code: "bad_gateway",
  message: "The upstream application did not answer.",
  headers: [],
};

/** 403 on the forward-auth endpoint: the caller is not a trusted proxy, so its X-Original-* say nothing. */
export const UNTRUSTED_FORWARD_AUTH: Refusal = {
  status: 403,
  code: "forbidden",
  message: "Forward-auth requests are accepted only from trusted proxies (LATCHKEY_TRUSTED_PROXIES).",
  headers: [],
};

/** 400 on the forward-auth endpoint: no X-Original-URI or X-Forwarded-Uri to decide on. */
export const MISSING_ORIGINAL_URI: Refusal = {
  status: 400,
  code: "invalid_request",
  message: "Forward-auth needs X-Original-URI (nginx) or X-Forwarded-Uri (Traefik).",
  headers: [],
};

/** 400: forward-auth without a usable original method. */
export const MISSING_ORIGINAL_METHOD: Refusal = {
  status: 400,
  code: "invalid_request",
  message:
    "Forward-auth needs X-Original-Method (nginx) or X-Forwarded-Method (Traefik) naming an HTTP method.",
  headers: [],
};

/** 400: forward-auth headers that contradict each other. */
export const CONFLICTING_ORIGINAL_REQUEST: Refusal = {
  status: 400,
  code: "invalid_request",
  message: "The X-Original-* and X-Forwarded-* headers describe different requests.",
  headers: [],
};

/** 400: an HTTP/2 request whose `Host` and `:authority` disagree (RFC 9113 §8.3.1: malformed). */
export const CONFLICTING_HOST: Refusal = {
  status: 400,
  code: "invalid_request",
  message: "The Host header and the :authority of the request name different hosts.",
  headers: [],
};

/** 400: an HTTP/2 request whose method HTTP/1.1 would not take (`delete`, an unknown token). */
export const UNSUPPORTED_METHOD: Refusal = {
  status: 400,
  code: "invalid_request",
  message: "The request method is not one this server accepts (methods are upper-case: GET, POST, …).",
  headers: [],
};

/**
 * 403 on the plain-HTTP listener when it refuses plain HTTP
 * (`LATCHKEY_SIDECAR_PLAIN_HTTP=refuse`): the same answer for every request,
 * whatever it carries, and never a redirect, which would have clients send the
 * key again after it already crossed the network in clear text.
 */
export const HTTPS_REQUIRED: Refusal = {
  status: 403,
  code: "https_required",
  message:
    "This API accepts HTTPS only; plain HTTP requests are rejected. Send the request to https:// instead. " +
    "A key sent with this request crossed the network unencrypted: rotate it.",
  headers: [],
};

/** 400: an `Upgrade` to anything but WebSocket. */
export const UNSUPPORTED_UPGRADE: Refusal = {
  status: 400,
  code: "invalid_request",
  message: "Only WebSocket upgrades are supported.",
  headers: [],
};

/** 400: a WebSocket handshake that is not a body-less GET (RFC 6455 §4.1), so no request can ride along. */
export const BAD_WEBSOCKET_HANDSHAKE: Refusal = {
  status: 400,
  code: "invalid_request",
  message: "A WebSocket handshake must be a GET request without a body.",
  headers: [],
};

/** 400: a method-override header naming a method the matched route's rule would not allow. */
export const METHOD_OVERRIDE_NOT_ALLOWED: Refusal = {
  status: 400,
  code: "invalid_request",
  message:
    "The method-override header names a method this route's rule does not cover; send the request with that method.",
  headers: [],
};

/**
 * 400 in forward-auth: the request carries headers the proxy in front would
 * pass to the app unchanged, and the sidecar cannot strip them there.
 */
export const UNSTRIPPABLE_HEADERS: Refusal = {
  status: 400,
  code: "invalid_request",
  message:
    "The request carries identity, rewrite or method-override headers (or a spelling of them with _ or .), which this route does not accept.",
  headers: [],
};

/**
 * 400 in forward-auth: a `?token=` the proxy in front would pass to the app, on
 * a route that does not take it (or more than one, of which it removes one).
 */
export const QUERY_TOKEN_NOT_ACCEPTED: Refusal = {
  status: 400,
  code: "invalid_request",
  message:
    "This route does not take a token in the URL (or it came more than once); send it in Authorization: Bearer or X-API-Key.",
  headers: [],
};

/**
 * 400 in forward-auth behind Traefik (the URI came as `X-Forwarded-Uri`): Traefik forwards the URL
 * to the app as sent, so a `token` parameter cannot be taken out and would reach the app's logs.
 */
export const QUERY_TOKEN_NOT_REMOVABLE: Refusal = {
  status: 400,
  code: "invalid_request",
  message:
    "The proxy in front forwards the URL as sent, so a token in it would reach the app; send it in Authorization: Bearer or X-API-Key (event streams: route them through the sidecar's proxy).",
  headers: [],
};

/**
 * 429 with `Retry-After` (whole seconds, at least 1) and, from the sidecar's
 * own limiter, its `RateLimit-Policy`/`RateLimit` headers (flat name, value).
 */
export function rateLimited(retryAfterSeconds = 1, rateLimitHeaders: readonly string[] = []): Refusal {
  const headers: [string, string][] = [["retry-after", String(Math.max(1, Math.ceil(retryAfterSeconds)))]];
  for (let i = 0; i + 1 < rateLimitHeaders.length; i += 2) {
    headers.push([rateLimitHeaders[i] as string, rateLimitHeaders[i + 1] as string]);
  }
  return {
    status: 429,
    code: "rate_limited",
    message: "The request is over a rate limit; retry after the time Retry-After gives.",
    headers,
  };
}

/**
 * 429 `usage_exceeded`: a usage-limited key has no uses left. `Retry-After`
 * points at its next refill when it has one; without one, retrying will not help.
 */
export function usageExceeded(refillsAt: Date | undefined, now = Date.now()): Refusal {
  return {
    status: 429,
    code: "usage_exceeded",
    message:
      refillsAt === undefined
        ? "The key has used all of its allowed requests."
        : `The key has used all of its allowed requests until ${refillsAt.toISOString()}.`,
    headers:
      refillsAt === undefined
        ? []
        : [["retry-after", String(Math.max(1, Math.ceil((refillsAt.getTime() - now) / 1000)))]],
  };
}

/** 403 `insufficient_scope`, naming the scopes the route requires (RFC 6750 §3.1 `scope`). */
export function insufficientScope(requiredScopes: readonly string[]): Refusal {
  const scope = requiredScopes.join(" ");
  return {
    status: 403,
    code: "insufficient_scope",
    message: `The key lacks a scope this route requires (${scope}).`,
    headers: [["www-authenticate", `${REALM}, error="insufficient_scope", scope="${scope}"`]],
  };
}

const badPaths = new Map<PathRejection, Refusal>();

/**
 * 400 for a request path the sidecar refuses to interpret (see `normalizePath`).
 * One object per reason, so an entry point can tell which reason a decision
 * carries (ext_authz names Envoy's settings for a path Envoy should have normalized).
 */
export function badPath(reason: PathRejection): Refusal {
  let refusal = badPaths.get(reason);
  if (refusal === undefined) {
    refusal = {
      status: 400,
      code: "invalid_request",
      message: `The request path is not acceptable (${reason}).`,
      headers: [],
    };
    badPaths.set(reason, refusal);
  }
  return refusal;
}

/** The JSON body of a refusal: `{ "error": { "code", "message", "requestId" } }`. */
export function refusalBody(refusal: Refusal, requestId: string): string {
  return JSON.stringify({ error: { code: refusal.code, message: refusal.message, requestId } });
}

/** Flat `[name, value, …]` headers of a refusal response. */
export function refusalHeaders(refusal: Refusal, requestId: string, body: string): string[] {
  const headers = [
    "content-type",
    "application/json",
    "content-length",
    String(Buffer.byteLength(body)),
    "cache-control",
    "no-store",
    "x-request-id",
    requestId,
  ];
  for (const [name, value] of refusal.headers) headers.push(name, value);
  return headers;
}

/** Sends a refusal on an HTTP response. */
export function sendRefusal(res: ServerResponse, refusal: Refusal, requestId: string): void {
  const body = refusalBody(refusal, requestId);
  res.writeHead(refusal.status, refusalHeaders(refusal, requestId, body));
  res.end(body);
}

/** Sends a refusal on a raw socket (a refused WebSocket upgrade), then closes it. */
export function sendRefusalOnSocket(socket: Duplex, refusal: Refusal, requestId: string): void {
  const body = refusalBody(refusal, requestId);
  const headers = refusalHeaders(refusal, requestId, body);
  let head = `HTTP/1.1 ${refusal.status} ${STATUS_TEXT[refusal.status] ?? "Error"}\r\nconnection: close\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  socket.end(`${head}\r\n${body}`);
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  429: "Too Many Requests",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

/**
 * 403 on a route bound to teams or environments (`teams:`, `environments:`),
 * for every credential that is not a usable key of them: a key of another
 * team or environment, and equally a key that does not verify at all
 * (malformed, unknown, revoked, expired, disabled). One answer, byte for byte
 * but the request id, so nobody holding a key learns from a bound route
 * whether it exists elsewhere; only a missing credential is told apart (401).
 * It names the accepted environments, which are the same for every caller;
 * never the teams, nor the key's own team.
 */
export function notAcceptedHere(teamsBound: boolean, environments: ReadonlySet<string> | undefined): Refusal {
  const parts: string[] = [];
  if (teamsBound) parts.push("of its own teams");
  if (environments !== undefined) parts.push(`of the environment ${[...environments].join(", ")}`);
  return {
    status: 403,
    code: "forbidden",
    message: `This route accepts keys ${parts.join(" and ")} only: the credential is not such a key, or is malformed, expired, revoked or unknown.`,
    headers: [],
  };
}

/**
 * 403: the route acts for the owner named in its path (`/agents/{owner}/**`),
 * and the key has another owner or none.
 */
export const WRONG_OWNER: Refusal = {
  status: 403,
  code: "forbidden",
  message: "This key may act only for its own owner: the path names another owner, or the key has none.",
  headers: [],
};

/** 403: a keychain's secret on a route that does not allow keychains (`keychains: true`). */
export const KEYCHAIN_NOT_ALLOWED: Refusal = {
  status: 403,
  code: "forbidden",
  message: "This route does not accept keychain secrets; use an API key.",
  headers: [],
};

/**
 * 400: the request's host cannot be decided on: none, more than one, not a host name, not in the
 * canonical form a proxy in front forwards as is, or a trusted proxy's X-Forwarded-Host naming
 * another host than Host. Asked only when the policy has rules for hosts.
 */
export function badHost(reason: string): Refusal {
  return {
    status: 400,
    code: "invalid_request",
    message: `The request's host cannot be decided on (${reason}).`,
    headers: [],
  };
}
