import { propagation, ROOT_CONTEXT, TraceFlags, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_TRACESTATE_LENGTH, remoteParent, traceHeaders } from "./trace-headers.js";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;

// What startTracing registers; these functions use the registered propagator.
beforeAll(() => propagation.setGlobalPropagator(new W3CTraceContextPropagator()));
afterAll(() => propagation.disable());

describe("remoteParent", () => {
  it("continues a well-formed traceparent, sampled flag and tracestate included", () => {
    const parent = trace.getSpanContext(remoteParent(VALID, "vendor=abc,other=1"));
    expect(parent).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, isRemote: true });
    expect(parent?.traceFlags).toBe(TraceFlags.SAMPLED);
    expect(parent?.traceState?.get("vendor")).toBe("abc");
  });

  it.each([
    ["missing", undefined],
    ["empty", ""],
    ["not hex", `00-${"z".repeat(32)}-${SPAN_ID}-01`],
    ["all-zero trace id", `00-${"0".repeat(32)}-${SPAN_ID}-01`],
    ["all-zero span id", `00-${TRACE_ID}-${"0".repeat(16)}-01`],
    ["version ff", `ff-${TRACE_ID}-${SPAN_ID}-01`],
    ["version 00 with extra fields", `${VALID}-extra`],
    ["upper-case hex", `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`],
    ["short trace id", `00-${TRACE_ID.slice(2)}-${SPAN_ID}-01`],
    ["two values joined", `${VALID}, ${VALID}`],
    ["huge", `00-${TRACE_ID}-${SPAN_ID}-01${" ".repeat(10_000)}`],
    ["control characters", `00-${TRACE_ID}-${SPAN_ID}-01\u0000`],
  ])("ignores a malformed traceparent (%s) without throwing", (_label, value) => {
    expect(remoteParent(value, "vendor=abc")).toBe(ROOT_CONTEXT);
  });

  it("drops a tracestate longer than the cap and keeps the parent", () => {
    const long = Array.from({ length: 400 }, (_, i) => `k${i}=${"v".repeat(20)}`).join(",");
    expect(long.length).toBeGreaterThan(MAX_TRACESTATE_LENGTH);
    const parent = trace.getSpanContext(remoteParent(VALID, long));
    expect(parent?.traceId).toBe(TRACE_ID);
    expect(parent?.traceState).toBeUndefined();
  });

  it("passes on at most 32 members and 512 characters of a tracestate under the cap", () => {
    const many = Array.from({ length: 100 }, (_, i) => `k${i}=${"v".repeat(20)}`).join(",");
    expect(many.length).toBeLessThanOrEqual(MAX_TRACESTATE_LENGTH);
    const headers = traceHeaders(remoteParent(VALID, many));
    const state = headers[headers.indexOf("tracestate") + 1] ?? "";
    expect(state.length).toBeLessThanOrEqual(512);
    expect(state.split(",").length).toBeLessThanOrEqual(32);
  });

  it("ignores malformed tracestate members but keeps the parent", () => {
    const parent = trace.getSpanContext(remoteParent(VALID, "=nokey,UPPER=1,ok=yes,\u0000=x"));
    expect(parent?.traceId).toBe(TRACE_ID);
    expect(parent?.traceState?.get("ok")).toBe("yes");
    expect(parent?.traceState?.get("UPPER")).toBeUndefined();
  });
});

describe("traceHeaders", () => {
  it("writes the context's span as a traceparent, and nothing for the root context", () => {
    expect(traceHeaders(ROOT_CONTEXT)).toEqual([]);
    expect(traceHeaders(remoteParent(VALID, undefined))).toEqual(["traceparent", VALID]);
  });
});
