import { context, type Span, trace } from "@opentelemetry/api";

/** What a log line carries about the span it was written in (snake case, as OpenTelemetry's log data model names them). */
export interface TraceLogFields {
  readonly trace_id?: string;
  readonly span_id?: string;
}

/**
 * The trace id and span id of `span`, or of the active span, for a log line;
 * `{}` when there is none, or when it is the API's no-op (tracing off): a log
 * line names only traces that exist somewhere. A new object on every call:
 * pino's mixin merge writes the line's own fields into it.
 *
 * @example
 * ```ts
 * const logger = pino({ mixin: () => traceLogFields() });
 * ```
 */
export function traceLogFields(span: Span | undefined = trace.getSpan(context.active())): TraceLogFields {
  if (span === undefined) return {};
  const spanContext = span.spanContext();
  if (!trace.isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}
