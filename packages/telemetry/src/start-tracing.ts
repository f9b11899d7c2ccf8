import { context, DiagLogLevel, diag, propagation, trace } from "@opentelemetry/api";
// Types only: the SDK itself is imported when tracing starts (below). Loaded eagerly it would cost
// every sidecar ~100 ms of start-up and tens of MB of memory with tracing off.
import type { Sampler, SpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { type TracingSettings, tracingSettings } from "./tracing-settings.js";

/** Options of {@link startTracing}. */
export interface StartTracingOptions {
  /** `service.name` unless `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`) sets one. */
  readonly serviceName: string;
  /** Where the `OTEL_*` settings are read (default `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Span processors to use instead of the exporters the environment names;
   * tracing is on when given (tests pass a `SimpleSpanProcessor` over an
   * `InMemorySpanExporter`). The sampler still comes from the environment.
   */
  readonly spanProcessors?: SpanProcessor[];
  /** Told about the SDK's own problems (an export that failed), at warn level. */
  readonly warn?: (message: string) => void;
}

/** The process's tracing, on or off. */
export interface Tracing {
  /** Whether spans are recorded at all; when false every span is the API's no-op. */
  readonly enabled: boolean;
  /** The settings in force, when enabled. */
  readonly settings: TracingSettings | undefined;
  /** Exports finished spans now (tests, shutdown). */
  forceFlush(): Promise<void>;
  /** Exports what is left and unregisters the SDK; later spans are no-ops. */
  shutdown(): Promise<void>;
}

let provider: TracerProvider | undefined;

/**
 * Whether {@link startTracing} turned tracing on in this process. Hot paths
 * read it once, at start-up, and skip every tracing step when it is false:
 * with tracing off a request costs what it did before tracing existed.
 *
 * @example
 * ```ts
 * const traced = tracingEnabled();
 * ```
 */
export function tracingEnabled(): boolean {
  return provider !== undefined;
}

const OFF: Tracing = {
  enabled: false,
  settings: undefined,
  forceFlush: async () => {},
  shutdown: async () => {},
};

/**
 * Starts the OpenTelemetry SDK for this process when the `OTEL_*` variables
 * ask for it (see `tracingSettings`): a tracer provider with the configured
 * sampler and a batch span processor per exporter, W3C trace context as the
 * propagator, and `AsyncLocalStorage` as the context manager, all registered
 * with `@opentelemetry/api`. Libraries (the verifier, the services' modules)
 * use only the API, so they trace when the SDK is registered and do nothing
 * otherwise. The SDK's modules are loaded only then. Call it once, before the
 * service starts; a second call while one is running returns an inert handle.
 *
 * @example
 * ```ts
 * const tracing = await startTracing({ serviceName: "latchkey-sidecar" });
 * process.once("SIGTERM", () => void tracing.shutdown());
 * ```
 * @throws ConfigError naming the variable when an `OTEL_*` value is not understood.
 */
export async function startTracing(options: StartTracingOptions): Promise<Tracing> {
  const env = options.env ?? process.env;
  const fromEnv = tracingSettings(env);
  const settings =
    fromEnv ??
    (options.spanProcessors === undefined
      ? undefined
      : tracingSettings({ ...env, OTEL_SDK_DISABLED: "false", OTEL_TRACES_EXPORTER: "console" }));
  if (settings === undefined || provider !== undefined) return OFF;
  const [
    { AsyncLocalStorageContextManager },
    { W3CTraceContextPropagator },
    { OTLPTraceExporter },
    { defaultResource, detectResources, envDetector, resourceFromAttributes },
    sdk,
    { ATTR_SERVICE_NAME },
  ] = await Promise.all([
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/core"),
    import("@opentelemetry/exporter-trace-otlp-proto"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/semantic-conventions"),
  ]);
  // Another call may have started the SDK while these loaded.
  if (provider !== undefined) return OFF;
  const processors =
    options.spanProcessors ??
    settings.exporters.map(
      (name) =>
        new sdk.BatchSpanProcessor({
          exporter: name === "otlp" ? new OTLPTraceExporter() : new sdk.ConsoleSpanExporter(),
          ...settings.batch,
        }),
    );
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const started = new sdk.TracerProvider({
    sampler: samplerFor(settings, sdk),
    resource,
    spanProcessors: processors,
    // A long SQL text or peer name is cut, not exported whole.
    spanLimits: { attributeValueLengthLimit: 2_048, attributeCountLimit: 64 },
  });
  if (options.warn !== undefined) {
    const warn = options.warn;
    const log = (message: string, ...args: unknown[]) =>
      warn(`opentelemetry: ${[message, ...args.map((arg) => String(arg))].join(" ")}`);
    const quiet = () => {};
    diag.setLogger({ error: log, warn: log, info: quiet, debug: quiet, verbose: quiet }, DiagLogLevel.WARN);
  }
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(started);
  provider = started;
  let stopping: Promise<void> | undefined;
  return {
    enabled: true,
    settings,
    forceFlush: () => started.forceFlush(),
    shutdown() {
      stopping ??= started.shutdown().finally(() => {
        if (provider === started) provider = undefined;
        trace.disable();
        propagation.disable();
        context.disable();
        diag.disable();
      });
      return stopping;
    },
  };
}

function samplerFor(settings: TracingSettings, sdk: typeof import("@opentelemetry/sdk-trace")): Sampler {
  switch (settings.sampler) {
    case "always_on":
      return new sdk.AlwaysOnSampler();
    case "always_off":
      return new sdk.AlwaysOffSampler();
    case "traceidratio":
      return new sdk.TraceIdRatioBasedSampler(settings.ratio);
    case "parentbased_always_on":
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() });
    case "parentbased_always_off":
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(settings.ratio) });
  }
}
