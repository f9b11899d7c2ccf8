import { ConfigError } from "@latchkey/config";

/** The samplers of the OpenTelemetry specification's `OTEL_TRACES_SAMPLER` that Latchkey supports. */
export const TRACE_SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;

/** One of {@link TRACE_SAMPLERS}. */
export type TraceSamplerName = (typeof TRACE_SAMPLERS)[number];

/** Where finished spans go: OTLP over HTTP (protobuf), or stdout for a quick look. */
export type TraceExporterName = "otlp" | "console";

/** Tracing as the standard `OTEL_*` variables ask for it, when they ask for it. */
export interface TracingSettings {
  readonly exporters: readonly TraceExporterName[];
  readonly sampler: TraceSamplerName;
  /** The ratio of `traceidratio` samplers, 0..1 (`OTEL_TRACES_SAMPLER_ARG`, default 1). */
  readonly ratio: number;
  /** Batch span processor settings (`OTEL_BSP_*`), in ms and spans. */
  readonly batch: {
    readonly scheduledDelayMillis: number;
    readonly exportTimeoutMillis: number;
    readonly maxQueueSize: number;
    readonly maxExportBatchSize: number;
  };
}

/**
 * Reads the tracing settings from the standard OpenTelemetry variables.
 * Tracing is off (undefined) unless `OTEL_TRACES_EXPORTER` names an exporter
 * (`otlp`, `console`, or both, comma-separated); `none`, unset, or
 * `OTEL_SDK_DISABLED=true` leave it off. That is the one departure from the
 * specification, whose default exporter is `otlp`: an auth layer should not
 * start sending data to `localhost:4318` because nobody set a variable.
 * The OTLP endpoint, headers, timeout and compression are read by the OTLP
 * exporter itself (`OTEL_EXPORTER_OTLP_ENDPOINT`, `…_TRACES_ENDPOINT`, …);
 * `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` by the resource detector.
 *
 * @example
 * ```ts
 * const settings = tracingSettings({ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.01" });
 * // settings?.ratio === 0.01
 * ```
 * @throws ConfigError naming the variable when a value is not understood.
 */
export function tracingSettings(env: NodeJS.ProcessEnv): TracingSettings | undefined {
  const disabled = env.OTEL_SDK_DISABLED?.trim().toLowerCase();
  if (disabled !== undefined && disabled !== "" && disabled !== "true" && disabled !== "false") {
    throw new ConfigError(`OTEL_SDK_DISABLED must be true or false, not ${JSON.stringify(disabled)}`, [
      "OTEL_SDK_DISABLED",
    ]);
  }
  if (disabled === "true") return undefined;
  const exporters = exporterList(env.OTEL_TRACES_EXPORTER);
  if (exporters.length === 0) return undefined;
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL;
  if (protocol !== undefined && protocol.trim() !== "" && protocol.trim() !== "http/protobuf") {
    throw new ConfigError(
      `OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported, not ${JSON.stringify(protocol)}`,
      ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"],
    );
  }
  const sampler = (env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() ||
    "parentbased_always_on") as TraceSamplerName;
  if (!TRACE_SAMPLERS.includes(sampler)) {
    throw new ConfigError(
      `OTEL_TRACES_SAMPLER must be one of ${TRACE_SAMPLERS.join(", ")}, not ${JSON.stringify(sampler)}`,
      ["OTEL_TRACES_SAMPLER"],
    );
  }
  const rawRatio = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  const ratio = rawRatio === undefined || rawRatio === "" ? 1 : Number(rawRatio);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new ConfigError(
      `OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, not ${JSON.stringify(rawRatio)}`,
      ["OTEL_TRACES_SAMPLER_ARG"],
    );
  }
  return {
    exporters,
    sampler,
    ratio,
    batch: {
      scheduledDelayMillis: count(env, "OTEL_BSP_SCHEDULE_DELAY", 5_000),
      exportTimeoutMillis: count(env, "OTEL_BSP_EXPORT_TIMEOUT", 30_000),
      maxQueueSize: count(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2_048),
      maxExportBatchSize: count(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
    },
  };
}

function exporterList(value: string | undefined): TraceExporterName[] {
  const names = (value ?? "")
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "");
  if (names.length === 1 && names[0] === "none") return [];
  for (const name of names) {
    if (name !== "otlp" && name !== "console") {
      throw new ConfigError(
        `OTEL_TRACES_EXPORTER must be otlp, console, both (comma-separated) or none, not ${JSON.stringify(value)}`,
        ["OTEL_TRACES_EXPORTER"],
      );
    }
  }
  return [...new Set(names)] as TraceExporterName[];
}

function count(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 2 ** 31) {
    throw new ConfigError(`${name} must be a whole number, not ${JSON.stringify(raw)}`, [name]);
  }
  return value;
}
