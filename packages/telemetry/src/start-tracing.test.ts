import { ConfigError } from "@latchkey/config";
import { context, propagation, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace";
import { describe, expect, it } from "vitest";
import { startTracing, tracingEnabled } from "./start-tracing.js";
import { traceHeaders } from "./trace-headers.js";
import { traceLogFields } from "./trace-log-fields.js";

describe("startTracing", () => {
  it("stays off without OTEL_TRACES_EXPORTER: nothing registered, spans are no-ops", async () => {
    const tracing = await startTracing({ serviceName: "t", env: {} });
    expect(tracing.enabled).toBe(false);
    expect(tracingEnabled()).toBe(false);
    const span = trace.getTracer("t").startSpan("x");
    expect(span.isRecording()).toBe(false);
    expect(traceLogFields(span)).toEqual({});
    span.end();
  });

  it("refuses a bad OTEL_* value before loading anything, naming it", async () => {
    await expect(
      startTracing({ serviceName: "t", env: { OTEL_TRACES_EXPORTER: "zipkin" } }),
    ).rejects.toBeInstanceOf(ConfigError);
    expect(tracingEnabled()).toBe(false);
  });

  it("when on: records with the sampler asked for, propagates W3C, runs code in a span's context; shutdown undoes it", async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = await startTracing({
      serviceName: "latchkey-unit",
      env: { OTEL_TRACES_SAMPLER: "always_on" },
      spanProcessors: [new SimpleSpanProcessor({ exporter })],
    });
    expect(tracing.enabled).toBe(true);
    expect(tracing.settings?.sampler).toBe("always_on");
    expect(tracingEnabled()).toBe(true);
    // A second start while one runs is inert.
    expect((await startTracing({ serviceName: "again", spanProcessors: [] })).enabled).toBe(false);

    const span = trace.getTracer("t").startSpan("work");
    const ids = context.with(trace.setSpan(ROOT_CONTEXT, span), () => traceLogFields());
    expect(ids).toEqual({ trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId });
    const headers = traceHeaders(trace.setSpan(ROOT_CONTEXT, span));
    expect(headers).toEqual([
      "traceparent",
      `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`,
    ]);
    span.end();
    const [finished] = exporter.getFinishedSpans();
    expect(finished?.resource.attributes["service.name"]).toBe("latchkey-unit");

    await tracing.shutdown();
    expect(tracingEnabled()).toBe(false);
    expect(trace.getTracer("t").startSpan("after").isRecording()).toBe(false);
    expect(propagation.fields()).toEqual([]);
  });
});
