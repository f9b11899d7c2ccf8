import { remoteParent, TRACEPARENT, TRACESTATE, traceHeaders } from "@latchkey/telemetry";
import {
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import type { TRACE_PARENT_MODES } from "./config.js";
import type { Decision } from "./decision.js";
import type { IncomingRequest, Via } from "./proxy/request-decision.js";

/** One of `TRACE_PARENT_MODES`. */
export type TraceParentMode = (typeof TRACE_PARENT_MODES)[number];

/** What the entry points need to trace requests; absent from the proxy context when tracing is off. */
export interface RequestTracing {
  /** Whose `traceparent` is continued (`LATCHKEY_TRACE_PARENTS`). */
  readonly parents: TraceParentMode;
  readonly isTrusted: (address: string) => boolean;
}

// The API's tracer: the SDK that startTracing registered.
const tracer = trace.getTracer("latchkey-sidecar");

// Low-cardinality span names, one per entry point (OpenTelemetry's HTTP conventions name a server
// span `{method} {route}`; the sidecar has no routes of its own, so the method and what it did).
const SPAN_NAMES: Readonly<Record<Via, string>> = {
  proxy: "proxy",
  websocket: "proxy websocket",
  "forward-auth": "forward-auth",
  "ext-authz": "envoy.service.auth.v3.Authorization/Check",
};

/**
 * Starts the server span of a request the sidecar decides on, continuing the
 * caller's trace when its `traceparent` is to be believed (see
 * {@link RequestTracing.parents}): exactly one well-formed `traceparent`
 * (several, or a malformed one, start a new trace; no error), plus its
 * `tracestate` when that is at most `MAX_TRACESTATE_LENGTH` characters.
 * The span carries the method and entry point now, and the decision when it
 * ends ({@link endRequestSpan}); never a credential, a query or a header.
 *
 * `trustedCaller`: whether the peer that sent the headers is a trusted proxy
 * (default: `request.peer` is; an ext_authz Check passes whether Envoy is).
 *
 * @example
 * ```ts
 * if (context.tracing) request.span = startRequestSpan(context.tracing, request);
 * ```
 */
export function startRequestSpan(
  tracing: RequestTracing,
  request: IncomingRequest,
  trustedCaller?: boolean,
): Span {
  // The header scan first: most requests carry no traceparent, and then the peer is never looked up.
  const parent = tracing.parents === "never" ? ROOT_CONTEXT : parentOf(tracing, request, trustedCaller);
  const span = tracer.startSpan(SPAN_NAMES[request.via], SERVER_SPAN, parent);
  if (!span.isRecording()) {
    // Unsampled: nothing of this span is exported, so its ids name nothing anywhere. A continued
    // trace is named by the caller's span instead (what the app receives unchanged, and what the
    // log line then carries); a trace begun here keeps the unsampled span, so that a Verify on a
    // miss is not sampled on its own either, but it is not logged (see `loggedSpanContext`).
    return parent === ROOT_CONTEXT ? span : (trace.getSpan(parent) ?? span);
  }
  // Attributes only on spans that record: an unsampled request allocates none.
  span.setAttributes({
    "http.request.method": request.method,
    "latchkey.via": request.via,
    "latchkey.request_id": request.requestId,
  });
  return span;
}

/**
 * The trace and span ids a request's log line carries: its span's when that
 * is recorded (exported), the caller's when the sidecar continued an
 * unsampled trace; none for an unsampled trace that began here, whose ids
 * exist nowhere else (and would lengthen every access-log line for nothing).
 *
 * @example
 * ```ts
 * const ids = loggedSpanContext(request.span); // { traceId, spanId } or undefined
 * ```
 */
export function loggedSpanContext(span: Span): SpanContext | undefined {
  const spanContext = span.spanContext();
  return span.isRecording() || spanContext.isRemote === true ? spanContext : undefined;
}

const SERVER_SPAN = { kind: SpanKind.SERVER } as const;

/**
 * The remote parent in a request's forwarded headers (`[name, value, …]`), when its sender may name
 * one; the root context otherwise.
 */
function parentOf(
  tracing: RequestTracing,
  request: IncomingRequest,
  trustedCaller: boolean | undefined,
): ReturnType<typeof remoteParent> {
  const headers = request.scanned.forward;
  let traceparent: string | undefined;
  let tracestate: string | undefined;
  let count = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length !== TRACEPARENT.length && name.length !== TRACESTATE.length) continue;
    const lower = name.toLowerCase();
    if (lower === TRACEPARENT) {
      traceparent = headers[i + 1];
      count++;
    } else if (lower === TRACESTATE) {
      // Several tracestate fields are one list (W3C Trace Context §3.3.1.1).
      tracestate = tracestate === undefined ? headers[i + 1] : `${tracestate},${headers[i + 1]}`;
    }
  }
  // Two traceparent headers cannot both be the parent: start a new trace.
  if (count !== 1) return ROOT_CONTEXT;
  const believed = tracing.parents === "always" || (trustedCaller ?? tracing.isTrusted(request.peer));
  return believed ? remoteParent(traceparent, tracestate) : ROOT_CONTEXT;
}

/**
 * Makes the upstream request continue the sidecar's span: while the span is
 * recording (sampled), any inbound `traceparent`/`tracestate` in `headers` is
 * replaced by the span's own; otherwise the inbound ones go on unchanged, as
 * they did before tracing existed.
 *
 * @example
 * ```ts
 * propagateUpstream(request.span, headers);
 * ```
 */
export function propagateUpstream(span: Span, headers: string[]): void {
  if (!span.isRecording()) return;
  let kept = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const drop =
      (name.length === TRACEPARENT.length || name.length === TRACESTATE.length) &&
      (name.toLowerCase() === TRACEPARENT || name.toLowerCase() === TRACESTATE);
    if (drop) continue;
    headers[kept] = name;
    headers[kept + 1] = headers[i + 1] as string;
    kept += 2;
  }
  headers.length = kept;
  for (const value of traceHeaders(trace.setSpan(ROOT_CONTEXT, span))) headers.push(value);
}

/**
 * Ends a request's span with what became of it: the status sent, the
 * decision's label, the key id and team id when a key was verified. A 5xx
 * status marks the span as an error.
 *
 * @example
 * ```ts
 * endRequestSpan(request.span, decision, 403, "insufficient_scope");
 * ```
 */
export function endRequestSpan(
  span: Span,
  decision: Decision | undefined,
  status: number,
  label: string,
  path: string,
): void {
  if (span.isRecording()) {
    span.setAttributes({
      "http.response.status_code": status,
      "url.path": path,
      "latchkey.decision": label,
    });
    const key = decision?.key;
    if (key !== undefined) span.setAttributes({ "latchkey.key_id": key.id, "latchkey.team_id": key.teamId });
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}
