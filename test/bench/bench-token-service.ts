import { findFreePort } from "../harness/free-port.js";
import { type ServiceProcess, spawnService } from "./service-process.js";

/** Options of {@link spawnBenchTokenService}. */
export interface BenchTokenServiceOptions {
  readonly databaseUrl: string;
  readonly natsUrl: string;
  readonly rootKey: string;
  /** The log line that says it is ready (default: the native gRPC listener is up). */
  readonly ready?: RegExp;
}

/** A token-service process for a benchmark, on free ports, logging at `info`. */
export async function spawnBenchTokenService(
  options: BenchTokenServiceOptions,
): Promise<{ readonly process: ServiceProcess; readonly grpcUrl: string }> {
  const [port, grpcPort] = [await findFreePort(), await findFreePort()];
  const process = await spawnService(
    "services/token-service/src/main.ts",
    {
      LATCHKEY_LOG_LEVEL: "info",
      DATABASE_URL: options.databaseUrl,
      NATS_URL: options.natsUrl,
      LATCHKEY_ROOT_KEY: options.rootKey,
      LATCHKEY_LISTEN: `127.0.0.1:${port}`,
      LATCHKEY_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
    },
    options.ready ?? /grpc server listening/,
  );
  return { process, grpcUrl: `http://127.0.0.1:${grpcPort}` };
}
