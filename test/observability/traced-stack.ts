// What the in-process tracing tests share: tracing started with the SDK's InMemorySpanExporter, then
// the real token-service (on the harness's PostgreSQL) and real sidecars in front of the demo app.
// The sampler is `parentbased_traceidratio` at 0: no trace starts on its own, so every span a test
// sees exists because a believed caller's `traceparent` said "sampled". Tracing is process-wide: one
// stack per test file (vitest runs each file in its own process).
import { randomBytes } from "node:crypto";
import { startTracing } from "@latchkey/telemetry";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace";
import { createSidecarLogger } from "../../services/sidecar/src/access-log.js";
import { parseSidecarConfig } from "../../services/sidecar/src/config.js";
import { type SidecarHandle, startSidecar } from "../../services/sidecar/src/sidecar.js";
import { type RecordingUpstream, startRecordingUpstream } from "../sidecar/recording-upstream.js";
import { startTestService, type TestService } from "../token-service/start.js";

/** A running traced stack. */
export interface TracedStack {
  readonly exporter: InMemorySpanExporter;
  readonly service: TestService;
  readonly upstream: RecordingUpstream;
  /** Trusts 127.0.0.1 (the default), so it continues the tests' traces; serves ext_authz too. */
  readonly trusting: SidecarHandle;
  /** Trusts only 10.9.9.9: to it, the tests are outsiders. */
  readonly wary: SidecarHandle;
  /** Trusts only 10.9.9.9 too, but continues anyone's trace (`LATCHKEY_TRACE_PARENTS=always`). */
  readonly open: SidecarHandle;
  /** Trusts 127.0.0.1, but starts every trace itself (`never`). */
  readonly closed: SidecarHandle;
  /** Lines the trusting sidecar's logger wrote (its access log included). */
  readonly logLines: string[];
  /** A key with scope `read`. */
  readonly token: string;
  readonly keyId: string;
  readonly teamId: string;
  /** Spans of one trace, finished so far. */
  spansOf(traceId: string): ReadableSpan[];
  close(): Promise<void>;
}

/** Random lower-case hex of `bytes` bytes (trace ids, span ids). */
export const hex = (bytes: number) => randomBytes(bytes).toString("hex");

/** A `traceparent` naming a new parent span in `traceId`, sampled unless `flags` says otherwise. */
export const traceparent = (traceId: string, flags = "01") => `00-${traceId}-${hex(8)}-${flags}`;

/** The span id of a span's parent, if it has one. */
export const parentId = (span: ReadableSpan) => span.parentSpanContext?.spanId;

/** Starts tracing, then the services; call once per file, in `beforeAll`. */
export async function startTracedStack(): Promise<TracedStack> {
  const exporter = new InMemorySpanExporter();
  const tracing = await startTracing({
    serviceName: "latchkey-test",
    env: { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" },
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  const service = await startTestService();
  const upstream = await startRecordingUpstream();
  const sidecarConfig = (trustedProxies?: string, traceParents?: "always" | "never") =>
    parseSidecarConfig({
      listen: "127.0.0.1:0",
      adminListen: "127.0.0.1:0",
      upstream: upstream.url,
      tokenServiceUrl: service.grpcUrl,
      ...(trustedProxies === undefined ? { extAuthzListen: "127.0.0.1:0" } : { trustedProxies }),
      ...(traceParents === undefined ? {} : { traceParents }),
    });
  const logLines: string[] = [];
  const logger = createSidecarLogger("info", {
    write: (chunk: string) => logLines.push(...chunk.split("\n")),
  });
  const silent = () => ({ logger: createSidecarLogger("silent") });
  const trusting = await startSidecar(sidecarConfig(), { logger });
  const wary = await startSidecar(sidecarConfig("10.9.9.9"), silent());
  const open = await startSidecar(sidecarConfig("10.9.9.9", "always"), silent());
  const closed = await startSidecar(sidecarConfig(undefined, "never"), silent());
  const { teamId } = await service.teamWithAdmin("traced");
  const issued = await service.tokens().issue({ teamId, name: "traced-key", scopes: ["read"] });
  return {
    exporter,
    service,
    upstream,
    trusting,
    wary,
    open,
    closed,
    logLines,
    token: issued.token,
    keyId: issued.key?.id ?? "",
    teamId,
    spansOf: (traceId) => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId),
    async close() {
      for (const sidecar of [trusting, wary, open, closed]) await sidecar.close();
      await upstream.app.close();
      await service.close();
      await tracing.shutdown();
    },
  };
}
