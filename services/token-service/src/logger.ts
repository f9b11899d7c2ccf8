import { traceLogFields } from "@latchkey/telemetry";
import pino, { type Logger } from "pino";

/**
 * The service's structured JSON logger. Authorization headers and anything
 * named like a token or secret are redacted as a second line of defence: the
 * code never passes them in the first place.
 */
export function createLogger(level: string, name = "latchkey-token-service"): Logger {
  return pino({
    name,
    level,
    // Lines written inside a call's span (tracing on) carry its trace and span ids.
    mixin: () => traceLogFields(),
    redact: {
      paths: [
        "token",
        "*.token",
        "rootKey",
        "*.rootKey",
        "authorization",
        "*.authorization",
        "headers.authorization",
        'headers["x-api-key"]',
      ],
      censor: "[redacted]",
    },
  });
}
