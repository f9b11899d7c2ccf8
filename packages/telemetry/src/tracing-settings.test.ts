import { ConfigError } from "@latchkey/config";
import { describe, expect, it } from "vitest";
import { tracingSettings } from "./tracing-settings.js";

function settingsError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    tracingSettings(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("tracingSettings", () => {
  it("is off unless OTEL_TRACES_EXPORTER names an exporter", () => {
    expect(tracingSettings({})).toBeUndefined();
    expect(tracingSettings({ OTEL_TRACES_EXPORTER: "" })).toBeUndefined();
    expect(tracingSettings({ OTEL_TRACES_EXPORTER: "none" })).toBeUndefined();
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toBeUndefined();
    expect(tracingSettings({ OTEL_TRACES_EXPORTER: "otlp", OTEL_SDK_DISABLED: "true" })).toBeUndefined();
  });

  it("reads the exporter, sampler and ratio", () => {
    const settings = tracingSettings({
      OTEL_TRACES_EXPORTER: "otlp, console",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.01",
      OTEL_BSP_SCHEDULE_DELAY: "200",
    });
    expect(settings).toMatchObject({
      exporters: ["otlp", "console"],
      sampler: "parentbased_traceidratio",
      ratio: 0.01,
      batch: { scheduledDelayMillis: 200, maxQueueSize: 2048 },
    });
    expect(tracingSettings({ OTEL_TRACES_EXPORTER: "otlp" })).toMatchObject({
      sampler: "parentbased_always_on",
      ratio: 1,
    });
  });

  it.each([
    [{ OTEL_TRACES_EXPORTER: "jaeger" }, "OTEL_TRACES_EXPORTER"],
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER: "jaeger_remote" }, "OTEL_TRACES_SAMPLER"],
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER_ARG: "1.5" }, "OTEL_TRACES_SAMPLER_ARG"],
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER_ARG: "half" }, "OTEL_TRACES_SAMPLER_ARG"],
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, "OTEL_EXPORTER_OTLP_PROTOCOL"],
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_BSP_SCHEDULE_DELAY: "-1" }, "OTEL_BSP_SCHEDULE_DELAY"],
    [{ OTEL_SDK_DISABLED: "maybe" }, "OTEL_SDK_DISABLED"],
  ])("refuses %o, naming the variable", (env, name) => {
    const error = settingsError(env);
    expect(error.settings).toContain(name);
    expect(error.message).toContain(name);
  });
});
