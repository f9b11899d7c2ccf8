import { ConfigError } from "@latchkey/config";
import { startTracing, type Tracing } from "@latchkey/telemetry";
import { loadSidecarConfig } from "./config.js";
import { PolicyError } from "./policy/policy.js";
import { startSidecar } from "./sidecar.js";

/**
 * The `latchkey-sidecar` entry point: configuration from the environment (and
 * `LATCHKEY_CONFIG`), then the sidecar; SIGTERM/SIGINT stop accepting, drain
 * in-flight requests and close the verifier.
 */
async function main(): Promise<void> {
  let sidecar: Awaited<ReturnType<typeof startSidecar>>;
  let tracing: Tracing;
  try {
    const config = loadSidecarConfig();
    // Before the sidecar starts, so its request handlers see whether tracing is on.
    tracing = await startTracing({
      serviceName: "latchkey-sidecar",
      warn: (message) => process.stderr.write(`${message}\n`),
    });
    sidecar = await startSidecar(config);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof PolicyError) {
      process.stderr.write(`latchkey-sidecar: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      sidecar.logger.info({ signal }, "shutting down");
      sidecar
        .close()
        .then(() => tracing.shutdown())
        .then(
          () => process.exit(0),
          (error: unknown) => {
            sidecar.logger.error({ err: error }, "shutdown failed");
            process.exit(1);
          },
        );
    });
  }
}

await main();
