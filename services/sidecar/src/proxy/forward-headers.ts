import { bearerToken } from "../credentials.js";
import { canonicalHostHeader } from "../policy/request-host.js";

/** What one pass over a request's raw headers finds. */
export interface ScannedRequest {
  /** Flat `[name, value, …]` to forward: without hop-by-hop, `x-latchkey-*`, forwarding and credential headers. */
  readonly forward: string[];
  /** The credential headers taken out (`Authorization: Bearer`, `X-API-Key`), re-added when the route passes them. */
  readonly credentialHeaders: string[];
  readonly bearer: string[];
  readonly apiKey: string[];
  /** The last `Host` value. */
  readonly host: string | undefined;
  /** How many `Host` headers came (RFC 9112 §3.2: more than one is a bad request). */
  readonly hostCount: number;
  /** Inbound forwarding headers, believed only from trusted proxies. */
  readonly forwardedFor: string | undefined;
  readonly forwardedProto: string | undefined;
  readonly forwardedHost: string | undefined;
  /** True when `X-Forwarded-Host` headers with different values came. */
  readonly forwardedHostConflict: boolean;
  /** Inbound `Forwarded` and `X-Real-IP`, flat, kept only from trusted proxies. */
  readonly otherForwarding: string[];
  /** The original request as a forward-auth caller reports it. */
  readonly originalUri: string | undefined;
  readonly originalMethod: string | undefined;
  /**
   * True when the forward-auth headers disagree (X-Original-URI and
   * X-Forwarded-Uri, or the two method headers, with different values): a
   * client may have added the name its proxy does not set.
   */
  readonly originalConflict: boolean;
  /**
   * True when the original URI came (also) as `X-Forwarded-Uri`, Traefik's name: Traefik forwards
   * the request's URI to the app as sent, so nothing in its query can be taken out.
   */
  readonly forwardedUri: boolean;
  readonly requestId: string | undefined;
  /**
   * The method a client asks the app to use instead of the request's
   * (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`), upper-cased;
   * "" when such headers disagree. The headers themselves are in
   * {@link methodOverrideHeaders}, forwarded only where the route allows it.
   */
  readonly methodOverride: string | undefined;
  readonly methodOverrideHeaders: string[];
  /**
   * True when the client sent a header the sidecar never forwards and an app
   * may act on: its identity namespace (`x-latchkey-*`, in any spelling that an
   * app reading `_` or `.` as `-` would merge), a rewrite header
   * (`X-Original-URL`, `X-Rewrite-URL`), or an underscore/dot spelling of a
   * header the sidecar handles itself (`x_forwarded_for`, `x_api_key`).
   * Proxy mode drops them; forward-auth, which cannot, refuses the request.
   */
  readonly strippedSensitive: boolean;
  /** The `Upgrade` header (WebSocket). */
  readonly upgrade: string | undefined;
  /** Whether a body follows (`Content-Length` > 0 or `Transfer-Encoding`; in HTTP/2, a stream the headers did not end). */
  readonly hasBody: boolean;
  /** HTTP/2 only: `Host` and `:authority` name different hosts, which two stacks could route two ways. */
  readonly hostConflict: boolean;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const EMPTY: string[] = [];

/**
 * One pass over `req.rawHeaders` that sorts every header into: forwarded as is,
 * dropped (hop-by-hop per RFC 9110 §7.6.1, `Expect`, any `x-latchkey-*` a client
 * sent to forge an identity), or kept aside (credentials, forwarding headers).
 * An HTTP/2 request (`http2` given) is rewritten for the HTTP/1.1 upstream:
 * its pseudo-headers are not forwarded, `:authority` becomes `Host`, its
 * cookie fields are joined into one `Cookie` (RFC 9113 §8.2.3, §8.3.1), and
 * whether a body follows is whether the stream outlived its headers.
 */
export function scanRequestHeaders(
  raw: readonly string[],
  http2?: { readonly endedWithHeaders: boolean },
): ScannedRequest {
  const forward: string[] = [];
  let credentialHeaders = EMPTY;
  let bearer = EMPTY;
  let apiKey = EMPTY;
  let otherForwarding = EMPTY;
  let host: string | undefined;
  let hostCount = 0;
  let forwardedHostConflict = false;
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  let originalUri: string | undefined;
  let originalMethod: string | undefined;
  let originalConflict = false;
  let forwardedUri = false;
  let requestId: string | undefined;
  let methodOverride: string | undefined;
  let methodOverrideHeaders = EMPTY;
  let strippedSensitive = false;
  let upgrade: string | undefined;
  let connection: string | undefined;
  let hasBody = http2 !== undefined && !http2.endedWithHeaders;
  let emptyBody = false;
  let authority: string | undefined;
  let cookies: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    switch (lower) {
      case "host":
        host = value;
        hostCount++;
        forward.push(name, value);
        continue;
      case "authorization": {
        const token = bearerToken(value);
        if (token === undefined) {
          forward.push(name, value);
          continue;
        }
        if (bearer === EMPTY) bearer = [];
        bearer.push(token);
        if (credentialHeaders === EMPTY) credentialHeaders = [];
        credentialHeaders.push(name, value);
        continue;
      }
      case "x-api-key":
        if (apiKey === EMPTY) apiKey = [];
        apiKey.push(value);
        if (credentialHeaders === EMPTY) credentialHeaders = [];
        credentialHeaders.push(name, value);
        continue;
      case "connection":
        connection = connection === undefined ? value : `${connection},${value}`;
        continue;
      case "upgrade":
        upgrade = value;
        continue;
      case "content-length":
        if (value !== "0") hasBody = true;
        else emptyBody = true;
        forward.push(name, value);
        continue;
      case "transfer-encoding":
        hasBody = true;
        continue;
      // HTTP/2 pseudo-headers: the request line's parts, which the upstream gets in its own.
      case ":authority":
        authority = value;
        continue;
      case ":method":
      case ":path":
      case ":scheme":
      case ":protocol":
        continue;
      case "cookie":
        if (http2 === undefined) forward.push(name, value);
        else cookies = cookies === undefined ? value : `${cookies}; ${value}`;
        continue;
      case "keep-alive":
      case "te":
      case "trailer":
      case "proxy-connection":
      case "proxy-authorization":
      case "expect":
      case "http2-settings":
        continue;
      case "x-forwarded-for":
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        continue;
      case "x-forwarded-proto":
        forwardedProto ??= value;
        continue;
      case "x-forwarded-host":
        if (forwardedHost !== undefined && forwardedHost !== value) forwardedHostConflict = true;
        forwardedHost ??= value;
        continue;
      case "forwarded":
      case "x-real-ip":
        if (otherForwarding === EMPTY) otherForwarding = [];
        otherForwarding.push(name, value);
        continue;
      case "x-request-id":
        if (REQUEST_ID.test(value)) requestId ??= value;
        continue;
      // What a forward-auth caller says the original request was. Read by forward-auth only; an app
      // must never take them from a client, so they are not forwarded.
      case "x-forwarded-uri":
        forwardedUri = true;
        if (originalUri !== undefined && originalUri !== value) originalConflict = true;
        originalUri ??= value;
        continue;
      case "x-original-uri":
        if (originalUri !== undefined && originalUri !== value) originalConflict = true;
        originalUri ??= value;
        continue;
      case "x-original-method":
      case "x-forwarded-method":
        if (originalMethod !== undefined && originalMethod !== value) originalConflict = true;
        originalMethod ??= value;
        continue;
      case "x-http-method-override":
      case "x-http-method":
      case "x-method-override": {
        const upper = value.trim().toUpperCase();
        methodOverride = methodOverride === undefined || methodOverride === upper ? upper : "";
        if (methodOverrideHeaders === EMPTY) methodOverrideHeaders = [];
        methodOverrideHeaders.push(name, value);
        continue;
      }
      // Frameworks (Symfony, IIS URL Rewrite, Zend) route on these instead of the request line.
      case "x-original-url":
      case "x-rewrite-url":
        strippedSensitive = true;
        continue;
      default:
        if (isSensitiveVariant(lower)) {
          strippedSensitive = true;
          continue;
        }
        forward.push(name, value);
    }
  }
  if (cookies !== undefined) forward.push("cookie", cookies);
  let hostConflict = false;
  if (authority !== undefined) {
    if (host === undefined) {
      host = authority;
      forward.push("host", authority);
    } else if (host.toLowerCase() !== authority.toLowerCase()) hostConflict = true;
  }
  const scanned = {
    forward,
    credentialHeaders,
    bearer,
    apiKey,
    host,
    hostCount,
    forwardedFor,
    forwardedProto,
    forwardedHost,
    forwardedHostConflict,
    otherForwarding,
    originalUri,
    originalMethod,
    originalConflict,
    forwardedUri,
    requestId,
    methodOverride,
    methodOverrideHeaders,
    strippedSensitive,
    upgrade,
    // An HTTP/2 stream that says Content-Length: 0 has no body to send, though it did not end.
    hasBody: hasBody && !(emptyBody && http2 !== undefined),
    hostConflict,
  };
  if (connection !== undefined) dropConnectionListed(scanned, connection);
  return scanned;
}

// Names the scan above handles; their `_`/`.` spellings are dropped too, because CGI, WSGI, Rack and
// PHP read `x_api_key` and `x-api-key` (or `x_forwarded_for` and `x-forwarded-for`) as one header.
const HANDLED_NAMES = new Set([
  "host",
  "authorization",
  "x-api-key",
  "connection",
  "upgrade",
  "content-length",
  "transfer-encoding",
  "keep-alive",
  "te",
  "trailer",
  "proxy-connection",
  "proxy-authorization",
  "expect",
  "http2-settings",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "forwarded",
  "x-real-ip",
  "x-request-id",
  "x-original-uri",
  "x-forwarded-uri",
  "x-original-method",
  "x-forwarded-method",
  "x-http-method-override",
  "x-http-method",
  "x-method-override",
  "x-original-url",
  "x-rewrite-url",
]);

/**
 * Whether a lower-cased header name the switch did not handle is the identity
 * namespace (`x-latchkey-…`) or a handled name, once `_` and `.` are read as
 * `-` the way CGI-style stacks merge them. Cheap for ordinary names: only
 * names starting with `x` or holding `_`/`.` are looked at further.
 */
export function isSensitiveVariant(lower: string): boolean {
  const separated = lower.includes("_") || lower.includes(".");
  if (!separated) return lower.startsWith("x-latchkey-");
  const canonical = lower.replace(/[_.]/g, "-");
  return canonical.startsWith("x-latchkey-") || HANDLED_NAMES.has(canonical);
}

// Headers a `Connection` value may name without making them ours to drop (already handled).
const CONNECTION_OPTIONS = new Set(["keep-alive", "close", "upgrade", ""]);

/** Removes the headers a `Connection` header lists (RFC 9110 §7.6.1). */
function dropConnectionListed(scanned: ScannedRequest, connection: string): void {
  const listed = new Set<string>();
  for (const token of connection.split(",")) {
    const name = token.trim().toLowerCase();
    if (!CONNECTION_OPTIONS.has(name)) listed.add(name);
  }
  if (listed.size === 0) return;
  const kept: string[] = [];
  for (let i = 0; i < scanned.forward.length; i += 2) {
    const name = scanned.forward[i] as string;
    if (!listed.has(name.toLowerCase())) kept.push(name, scanned.forward[i + 1] as string);
  }
  scanned.forward.length = 0;
  scanned.forward.push(...kept);
}

// Response headers that describe the upstream hop, not the response (RFC 9110 §7.6.1).
const RESPONSE_HOP_BY_HOP = new Set([
  // Not hop-by-hop in HTTP/1.1, but forbidden in an HTTP/2 response (RFC 9113 §8.2.2).
  "http2-settings",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "proxy-connection",
  "proxy-authenticate",
]);

/** Response headers as they go to the client, and whether the body is an event stream. */
export interface FilteredResponseHeaders {
  readonly headers: string[];
  readonly eventStream: boolean;
  /** The `Content-Length` the upstream sent, or -1 (none, several, or not a plain number). */
  readonly contentLength: number;
}

/**
 * Converts undici's raw response headers to the flat string list `writeHead`
 * takes, dropping hop-by-hop headers and those a `Connection` header lists.
 */
export function filterResponseHeaders(raw: readonly Buffer[]): FilteredResponseHeaders {
  const headers: string[] = [];
  let eventStream = false;
  let contentLength = -2; // -2: none seen yet; -1: unusable
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString("latin1");
    const value = (raw[i + 1] as Buffer).toString("latin1");
    // Only names of these lengths can matter; the rest (date, content-length, …) skip the lowercasing.
    if (INTERESTING_RESPONSE_LENGTHS.has(name.length)) {
      const lower = name.toLowerCase();
      if (RESPONSE_HOP_BY_HOP.has(lower)) {
        if (lower === "connection") {
          for (const token of value.split(",")) {
            const listedName = token.trim().toLowerCase();
            if (CONNECTION_OPTIONS.has(listedName)) continue;
            listed ??= new Set();
            listed.add(listedName);
          }
        }
        continue;
      }
      if (lower === "content-type" && value.toLowerCase().startsWith("text/event-stream")) eventStream = true;
      else if (lower === "content-length")
        contentLength = contentLength === -2 && DIGITS.test(value) ? Number(value) : -1;
    }
    headers.push(name, value);
  }
  if (contentLength === -2) contentLength = -1;
  if (listed === undefined) return { headers, eventStream, contentLength };
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!listed.has((headers[i] as string).toLowerCase()))
      kept.push(headers[i] as string, headers[i + 1] as string);
  }
  return { headers: kept, eventStream, contentLength };
}

const DIGITS = /^\d{1,15}$/;
const INTERESTING_RESPONSE_LENGTHS = new Set(
  [...RESPONSE_HOP_BY_HOP, "content-type", "content-length"].map((name) => name.length),
);

/** Context for {@link buildUpstreamHeaders}. */
export interface UpstreamHeaderContext {
  /** The peer's address as the socket sees it. */
  readonly peer: string;
  /** Whether the client's connection is TLS (the HTTPS listener): `X-Forwarded-Proto: https`. */
  readonly secure: boolean;
  /** Whether the peer is a trusted proxy; asked only when it sent forwarding headers. */
  readonly isTrusted: (address: string) => boolean;
  readonly requestId: string;
  /** Identity headers of the verified key, if any. */
  readonly identity: readonly string[] | undefined;
  readonly passCredential: boolean;
  readonly passMethodOverride: boolean;
  /**
   * Send `Host` (and `X-Forwarded-Host`) in canonical form (lower case, no trailing dot): set when
   * the policy decides on hosts, so the app reads the host the policy matched.
   */
  readonly canonicalHost?: boolean;
}

/**
 * Completes the forwarded header list: credentials and method-override headers
 * back when the route passes them, the key's identity, `X-Forwarded-For/-Proto/-Host` (extending a trusted
 * proxy's, replacing anyone else's) and `X-Request-Id`.
 */
export function buildUpstreamHeaders(scanned: ScannedRequest, context: UpstreamHeaderContext): string[] {
  const headers = scanned.forward;
  const host =
    context.canonicalHost === true && scanned.host !== undefined
      ? canonicalHostHeader(scanned.host)
      : scanned.host;
  if (host !== scanned.host) {
    for (let i = 0; i < headers.length; i += 2)
      if ((headers[i] as string).toLowerCase() === "host") headers[i + 1] = host as string;
  }
  if (context.passCredential) for (const value of scanned.credentialHeaders) headers.push(value);
  if (context.passMethodOverride) for (const value of scanned.methodOverrideHeaders) headers.push(value);
  if (context.identity !== undefined) for (const value of context.identity) headers.push(value);
  const hasInbound =
    scanned.forwardedFor !== undefined ||
    scanned.forwardedProto !== undefined ||
    scanned.forwardedHost !== undefined ||
    scanned.otherForwarding.length > 0;
  const trusted = hasInbound && context.isTrusted(context.peer);
  headers.push(
    "x-forwarded-for",
    trusted && scanned.forwardedFor !== undefined ? `${scanned.forwardedFor}, ${context.peer}` : context.peer,
    "x-forwarded-proto",
    trusted && scanned.forwardedProto !== undefined
      ? scanned.forwardedProto
      : context.secure
        ? "https"
        : "http",
  );
  const forwardedHost =
    trusted && scanned.forwardedHost !== undefined && context.canonicalHost !== true
      ? scanned.forwardedHost
      : host;
  if (forwardedHost !== undefined) headers.push("x-forwarded-host", forwardedHost);
  if (trusted) for (const value of scanned.otherForwarding) headers.push(value);
  headers.push("x-request-id", context.requestId);
  return headers;
}
