import { type Context, context as contextApi, propagation, ROOT_CONTEXT, trace } from "@opentelemetry/api";

/** W3C Trace Context header names (lower case, as Node reports them). */
export const TRACEPARENT = "traceparent";
export const TRACESTATE = "tracestate";

/**
 * The longest `tracestate` value read. The W3C limit is 32 members and 512
 * characters once propagated (the SDK's `TraceState` drops members past it);
 * anything much longer is not a tracing system's header, so it is ignored
 * before it is split at all.
 */
export const MAX_TRACESTATE_LENGTH = 4_096;

interface Pair {
  traceparent: string | undefined;
  tracestate: string | undefined;
}

const pairGetter = {
  keys: () => [TRACEPARENT, TRACESTATE],
  get: (carrier: Pair, key: string) => (key === TRACEPARENT ? carrier.traceparent : carrier.tracestate),
};

/**
 * The remote parent a `traceparent` (and `tracestate`) header names, as a
 * context to start a server span in, read by the W3C Trace Context propagator
 * that `startTracing` registers (tracing off: always the root context, and
 * callers skip this anyway); `ROOT_CONTEXT` when the header is
 * missing or malformed (version `ff`, all-zero ids, bad hex, a version-00
 * value with extra fields): a bad header starts a new trace, it never fails a
 * request. A `tracestate` over {@link MAX_TRACESTATE_LENGTH} is dropped.
 *
 * @example
 * ```ts
 * const parent = remoteParent(req.headers.traceparent, req.headers.tracestate);
 * const span = tracer.startSpan("GET", { kind: SpanKind.SERVER }, parent);
 * ```
 */
export function remoteParent(traceparent: string | undefined, tracestate: string | undefined): Context {
  if (traceparent === undefined || traceparent.length > 128) return ROOT_CONTEXT;
  const state =
    tracestate !== undefined && tracestate.length <= MAX_TRACESTATE_LENGTH ? tracestate : undefined;
  return propagation.extract(ROOT_CONTEXT, { traceparent, tracestate: state }, pairGetter);
}

/**
 * The `traceparent` (and `tracestate` when the span has one) that continue
 * `context`'s span in the next hop, as `[name, value, …]`; empty when the
 * context holds no valid span.
 *
 * @example
 * ```ts
 * headers.push(...traceHeaders(trace.setSpan(ROOT_CONTEXT, span)));
 * ```
 */
export function traceHeaders(context: Context = contextApi.active()): string[] {
  const out: string[] = [];
  if (trace.getSpanContext(context) === undefined) return out;
  propagation.inject(context, out, {
    set: (carrier: string[], key: string, value: string) => {
      carrier.push(key, value);
    },
  });
  return out;
}

/**
 * {@link traceHeaders} as a plain object, for gRPC metadata and NATS headers.
 *
 * @example
 * ```ts
 * const metadata = traceHeaderRecord(trace.setSpan(parent, span)); // { traceparent: "00-…-01" }
 * ```
 */
export function traceHeaderRecord(context: Context = contextApi.active()): Record<string, string> {
  const list = traceHeaders(context);
  const record: Record<string, string> = {};
  for (let i = 0; i < list.length; i += 2) record[list[i] as string] = list[i + 1] as string;
  return record;
}
