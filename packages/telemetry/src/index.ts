/** OpenTelemetry tracing for Latchkey's services: started from the standard `OTEL_*` variables, off by default. */
export { type StartTracingOptions, startTracing, type Tracing, tracingEnabled } from "./start-tracing.js";
export {
  MAX_TRACESTATE_LENGTH,
  remoteParent,
  TRACEPARENT,
  TRACESTATE,
  traceHeaderRecord,
  traceHeaders,
} from "./trace-headers.js";
export { type TraceLogFields, traceLogFields } from "./trace-log-fields.js";
export {
  TRACE_SAMPLERS,
  type TraceExporterName,
  type TraceSamplerName,
  type TracingSettings,
  tracingSettings,
} from "./tracing-settings.js";
