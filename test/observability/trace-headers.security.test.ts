// Hostile and untrusted trace headers at the sidecar (traced-stack.ts: tracing in one process, the
// real token-service and sidecars, sampling at 0 so that only a believed parent's "sampled" flag makes
// spans). A malformed, repeated or oversized traceparent/tracestate never fails a request and never
// forces a trace; an outsider's sampled flag is not obeyed unless LATCHKEY_TRACE_PARENTS=always.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SidecarHandle } from "../../services/sidecar/src/sidecar.js";
import { send } from "../harness/http-client.js";
import { echoed } from "../sidecar/recording-upstream.js";
import { hex, startTracedStack, type TracedStack, traceparent } from "./traced-stack.js";

let stack: TracedStack;
let trusting: SidecarHandle;
let token = "";
let wary: SidecarHandle;
let open: SidecarHandle;
let closed: SidecarHandle;
const spansOf = (traceId: string) => stack.spansOf(traceId);

beforeAll(async () => {
  stack = await startTracedStack();
  ({ trusting, token, wary, open, closed } = stack);
});

afterAll(() => stack?.close());

beforeEach(() => stack.exporter.reset());

describe("trace headers passed on to the app", () => {
  it("forwards an unsampled caller's traceparent unchanged and records nothing", async () => {
    const incoming = traceparent(hex(16), "00");
    const response = await send(`http://127.0.0.1:${trusting.port}`, "GET", "/orders/4", {
      authorization: `Bearer ${token}`,
      traceparent: incoming,
    });
    expect(response.status).toBe(200);
    expect(echoed(response).headers.traceparent).toBe(incoming);
    expect(stack.exporter.getFinishedSpans()).toEqual([]);
  });

  it("caps a long tracestate it passes on", async () => {
    const traceId = hex(16);
    const tracestate = Array.from({ length: 60 }, (_, i) => `vendor${i}=${"x".repeat(40)}`).join(",");
    const response = await send(`http://127.0.0.1:${trusting.port}`, "GET", "/orders/5", {
      authorization: `Bearer ${token}`,
      traceparent: traceparent(traceId),
      tracestate,
    });
    expect(response.status).toBe(200);
    const sent = echoed(response).headers.tracestate ?? "";
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.length).toBeLessThanOrEqual(512);
    expect(sent.split(",").length).toBeLessThanOrEqual(32);
  });
});

describe("hostile trace headers", () => {
  it.each([
    ["malformed", { traceparent: "00-not-a-trace-01" }],
    ["all zero", { traceparent: `00-${"0".repeat(32)}-${"0".repeat(16)}-01` }],
    ["version ff", { traceparent: `ff-${hex(16)}-${hex(8)}-01` }],
    ["two traceparents", { traceparent: [traceparent(hex(16)), traceparent(hex(16))] }],
    ["huge tracestate", { traceparent: traceparent(hex(16)), tracestate: "a=b,".repeat(2_000) }],
    ["garbage tracestate", { traceparent: traceparent(hex(16)), tracestate: "\u00ff\u00fe==,,=,=" }],
  ])("%s: the request is decided as usual, and no trace is forced", async (label, headers) => {
    const response = await send(
      `http://127.0.0.1:${trusting.port}`,
      "GET",
      `/hostile/${encodeURIComponent(label)}`,
      {
        authorization: `Bearer ${token}`,
        ...headers,
      },
    );
    expect(response.status).toBe(200);
    // Only a single well-formed sampled parent is continued: the huge and garbage tracestates ride
    // on a valid one, so those two are recorded (with their tracestate dropped or cleaned).
    const recorded = stack.exporter.getFinishedSpans().filter((s) => s.name === "proxy");
    if (label.endsWith("tracestate")) {
      expect(recorded).toHaveLength(1);
      expect(String(echoed(response).headers.tracestate ?? "").length).toBeLessThanOrEqual(512);
    } else {
      expect(recorded).toEqual([]);
    }
  });

  it("an outsider's sampled traceparent does not make the sidecar record, and reaches the app as it was", async () => {
    const incoming = traceparent(hex(16));
    const response = await send(`http://127.0.0.1:${wary.port}`, "GET", "/outsider", {
      authorization: `Bearer ${token}`,
      traceparent: incoming,
    });
    expect(response.status).toBe(200);
    expect(stack.exporter.getFinishedSpans()).toEqual([]);
    expect(echoed(response).headers.traceparent).toBe(incoming);
  });
});

describe("LATCHKEY_TRACE_PARENTS", () => {
  it("always: continues an untrusted caller's trace; never: not even a trusted one's", async () => {
    const continued = hex(16);
    const viaOpen = await send(`http://127.0.0.1:${open.port}`, "GET", "/parents/always", {
      authorization: `Bearer ${token}`,
      traceparent: traceparent(continued),
    });
    expect(viaOpen.status).toBe(200);
    expect(spansOf(continued).map((s) => s.name)).toContain("proxy");

    const ignored = hex(16);
    const viaClosed = await send(`http://127.0.0.1:${closed.port}`, "GET", "/parents/never", {
      authorization: `Bearer ${token}`,
      traceparent: traceparent(ignored),
    });
    expect(viaClosed.status).toBe(200);
    expect(spansOf(ignored)).toEqual([]);
  });
});
