import { context, DiagLogLevel, diag, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  type Sampler,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
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
 * otherwise. Call it once, before the service starts; a second call while one
 * is running returns an inert handle.
 *
 * @example
 * ```ts
 * const tracing = startTracing({ serviceName: "latchkey-sidecar" });
 * process.once("SIGTERM", () => void tracing.shutdown());
 * ```
 * @throws ConfigError naming the variable when an `OTEL_*` value is not understood.
 */
export function startTracing(options: StartTracingOptions): Tracing {
  const env = options.env ?? process.env;
  const fromEnv = tracingSettings(env);
  const settings =
    fromEnv ??
    (options.spanProcessors === undefined
      ? undefined
      : tracingSettings({ ...env, OTEL_SDK_DISABLED: "false", OTEL_TRACES_EXPORTER: "console" }));
  if (settings === undefined || provider !== undefined) return OFF;
  const processors =
    options.spanProcessors ??
    settings.exporters.map(
      (name) =>
        new BatchSpanProcessor({
          exporter: name === "otlp" ? new OTLPTraceExporter() : new ConsoleSpanExporter(),
          ...settings.batch,
        }),
    );
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const started = new TracerProvider({
    sampler: samplerFor(settings),
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

function samplerFor(settings: TracingSettings): Sampler {
  switch (settings.sampler) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(settings.ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.ratio) });
  }
}
