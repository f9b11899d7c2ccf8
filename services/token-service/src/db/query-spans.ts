import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { LogEvent } from "kysely";

const tracer = trace.getTracer("latchkey-token-service");

/**
 * A kysely `log` function that records each query as a client span, child of
 * the span active when it ran (an RPC's, the outbox publisher's); a query run
 * outside any recording span (a poll, a sweep) makes none, so background work
 * does not fill the collector with one-span traces. Kysely calls it after the
 * query, so the span is back-dated by the query's duration. The span holds the
 * SQL text as kysely compiled it, with `$n` placeholders: values (token
 * hashes, names) are bound parameters and never exported.
 *
 * @example
 * ```ts
 * new Kysely<Database>({ dialect, log: tracingEnabled() ? recordQuerySpan : undefined });
 * ```
 */
export function recordQuerySpan(event: LogEvent): void {
  const parent = context.active();
  if (trace.getSpan(parent)?.isRecording() !== true) return;
  const end = Date.now();
  const text = event.query.sql;
  const operation = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? "QUERY";
  const span = tracer.startSpan(
    operation,
    {
      kind: SpanKind.CLIENT,
      startTime: end - event.queryDurationMillis,
      attributes: {
        "db.system.name": "postgresql",
        "db.operation.name": operation,
        "db.query.text": text,
      },
    },
    parent,
  );
  if (event.level === "error") {
    const code = (event.error as { code?: unknown } | null)?.code;
    span.setAttribute("error.type", typeof code === "string" ? code : "error");
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end(end);
}
