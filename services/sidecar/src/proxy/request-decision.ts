import type { Span, SpanContext } from "@opentelemetry/api";
import { type Decision, type DecisionLabel, notChecked } from "../decision.js";
import type { Refusal } from "../refusal.js";
import { endRequestSpan, loggedSpanContext, propagateUpstream } from "../request-span.js";
import { buildUpstreamHeaders, type ScannedRequest } from "./forward-headers.js";
import { identityHeaders } from "./identity-headers.js";
import type { ProxyContext } from "./proxy-context.js";

/**
 * How a request reached the sidecar: proxied HTTP, a WebSocket handshake, a
 * forward-auth question (nginx, Traefik) or an Envoy ext_authz Check.
 */
export type Via = "proxy" | "websocket" | "forward-auth" | "ext-authz";

/** A request as each entry point hands it to the shared steps below. */
export interface IncomingRequest {
  readonly via: Via;
  readonly method: string;
  /** The path of the target to decide on, before any `?`. */
  readonly rawPath: string;
  /** Its query without the `?`; "" when there is none. */
  readonly query: string;
  readonly scanned: ScannedRequest;
  readonly requestId: string;
  /** The TCP peer's address (the client, or the proxy in front). */
  readonly peer: string;
  /** `performance.now()` when it arrived. */
  readonly start: number;
  /** See `RequestFacts.queryAsSent`. */
  readonly queryAsSent?: boolean;
  /** See `RequestFacts.abortable`. */
  readonly abortable?: { readonly signal: AbortSignal };
  /** The request's server span, when tracing is on (`request-span.ts`); ended by {@link logRequest}. */
  span?: Span | undefined;
}

/**
 * The one decision path of the proxy, the WebSocket upgrade, forward-auth and
 * ext_authz: unchecked in `disabled` mode, otherwise the policy's and the
 * verifier's. Forward-auth and ext_authz decide on a request the app gets from
 * another proxy, with the path the client (or Envoy's normalization) gave it,
 * so a path the sidecar would rewrite is refused there instead
 * (`RequestFacts.pathAsSent`); nginx and Traefik cannot remove headers either,
 * Envoy can (`RequestFacts.headersAsSent`). Synchronous when the answer is local.
 */
export function decideRequest(context: ProxyContext, request: IncomingRequest): Decision | Promise<Decision> {
  if (context.mode === "disabled") return notChecked(request.rawPath, request.query);
  const { scanned } = request;
  // The host: `Host`, or for forward-auth the caller's X-Forwarded-Host (the original request
  // reached the proxy with its Host). In proxy mode a trusted proxy's X-Forwarded-Host must agree
  // with Host. Plain fields, no object per request: the hot path reads them only for host rules.
  const forwardAuth = request.via === "forward-auth";
  const trustedForwardedHost =
    !forwardAuth && scanned.forwardedHost !== undefined && context.isTrusted(request.peer);
  const decided = context.authorize({
    method: request.method,
    rawPath: request.rawPath,
    query: request.query,
    bearer: scanned.bearer,
    apiKey: scanned.apiKey,
    methodOverride: scanned.methodOverride,
    strippedSensitive: scanned.strippedSensitive,
    pathAsSent: request.via === "forward-auth" || request.via === "ext-authz",
    headersAsSent: request.via === "forward-auth",
    queryAsSent: request.queryAsSent,
    abortable: request.abortable,
    span: request.span,
    host: forwardAuth ? scanned.forwardedHost : scanned.host,
    hostAmbiguous: forwardAuth
      ? scanned.forwardedHostConflict
      : scanned.hostCount > 1 || (trustedForwardedHost && scanned.forwardedHostConflict),
    forwardedHost: trustedForwardedHost ? scanned.forwardedHost : undefined,
  });
  // Rate limits: one synchronous call per decision (rate-limit/rate-limit-step.ts). A request it
  // refuses keeps its key, so `whenDecided` counts it as RATE_LIMITED in the key's usage.
  return context.rateLimit(decided, request);
}

/** What waits for a decision: the entry point's handling of it, or of a failure to decide. */
export interface DecisionReceiver {
  decided(decision: Decision): void;
  failed(error: unknown): void;
}

/**
 * Settles a decision and hands it to `receiver`: at once when it was
 * synchronous (no closure, no promise on the cache-hit path), or when the
 * verifier answers.
 */
export function whenDecided(
  context: ProxyContext,
  decision: Decision | Promise<Decision>,
  receiver: DecisionReceiver,
): void {
  if (decision instanceof Promise) {
    decision.then(
      (decided) => receiver.decided(settleDecision(context, decided)),
      (error: unknown) => receiver.failed(error),
    );
  } else {
    receiver.decided(settleDecision(context, decision));
  }
}

/**
 * The one synchronous step every decided request passes (proxy, WebSocket,
 * forward-auth; from the cache or from the token-service) before it is acted
 * on: it is counted here. A per-request call that must see every decision
 * (usage counting, `(keyId, outcome)`) or may still turn a grant into a refusal
 * (a local rate limiter returning a `rate_limited` decision) belongs here too,
 * as one synchronous call before the count, so that the metric, the access log
 * and the answer all show the final decision. No promise, no closure: it runs
 * on the cache-hit path.
 */
export function settleDecision(context: ProxyContext, decision: Decision): Decision {
  context.metrics.decision(decision.label);
  context.recordUsage(decision);
  return decision;
}

/**
 * Writes the request's access-log line once its answer is known: the decision
 * (or `label` when there is none, e.g. a request refused before deciding), the
 * status sent, and in log mode the refusal enforce mode would have sent.
 */
export function logRequest(
  context: ProxyContext,
  request: IncomingRequest,
  decision: Decision | undefined,
  status: number,
  label: DecisionLabel = "not_checked",
): void {
  const { span } = request;
  let spanContext: SpanContext | undefined;
  if (span !== undefined) {
    spanContext = loggedSpanContext(span);
    endRequestSpan(span, decision, status, decision?.label ?? label, decision?.path ?? request.rawPath);
  }
  context.accessLog({
    requestId: request.requestId,
    method: request.method,
    // Never the query: it may hold a `?token=`.
    path: decision?.path ?? request.rawPath,
    status,
    decision: decision?.label ?? label,
    keyId: decision?.key?.id,
    teamId: decision?.key?.teamId,
    durationMs: Math.round((performance.now() - request.start) * 1000) / 1000,
    // Set or undefined rather than spread in: one object of one shape per request (the log drops
    // undefined fields).
    via: request.via === "proxy" ? undefined : request.via,
    wouldRefuse: decision === undefined || decision.allow ? undefined : decision.refusal?.status,
    traceId: spanContext?.traceId,
    spanId: spanContext?.spanId,
  });
}

/**
 * A request refused before any decision (a malformed handshake, a forward-auth
 * caller's mistake, plain HTTP where only HTTPS is served): counted and logged.
 */
export function countRefusedEarly(
  context: ProxyContext,
  request: IncomingRequest,
  refusal: Refusal,
  label: DecisionLabel = "bad_request",
): void {
  context.metrics.decision(label);
  logRequest(context, request, undefined, refusal.status, label);
}

/** The request target to send upstream: the app's base path, the decided path, the decided query. */
export function upstreamTarget(context: ProxyContext, decision: Decision): string {
  return `${context.basePath}${decision.path}${decision.query === "" ? "" : `?${decision.query}`}`;
}

/**
 * The headers to send upstream: the client's, sorted by the scan, with the
 * key's identity only when the request was granted (in log mode a refused
 * request still goes through, but without an identity it was not given).
 * `connection` is the client's socket: its address, and whether it is TLS.
 */
export function upstreamHeaders(
  context: ProxyContext,
  request: IncomingRequest,
  decision: Decision,
  connection: { readonly remoteAddress?: string | undefined },
): string[] {
  const headers = buildUpstreamHeaders(request.scanned, {
    peer: connection.remoteAddress ?? "",
    secure: (connection as { readonly encrypted?: boolean }).encrypted === true,
    isTrusted: context.isTrusted,
    requestId: request.requestId,
    identity: decision.allow && decision.key !== undefined ? identityHeaders(decision.key) : undefined,
    passCredential: decision.passCredential,
    passMethodOverride: decision.passMethodOverride,
    canonicalHost: context.canonicalHost,
  });
  if (request.span !== undefined) propagateUpstream(request.span, headers);
  return headers;
}
