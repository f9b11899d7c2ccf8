import { randomBytes } from "node:crypto";
import { findFreePort } from "../harness/free-port.js";
import { type NatsServer, startNats } from "../harness/nats.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";
import { type ServiceProcess, spawnService } from "./service-process.js";

/** A token-service process on its own PostgreSQL and NATS servers, for a benchmark. */
export interface BenchTokenService {
  readonly postgres: PostgresServer;
  readonly nats: NatsServer;
  readonly service: ServiceProcess;
  /** `http://127.0.0.1:<native gRPC port>` */
  readonly grpcUrl: string;
  readonly rootKey: string;
  /** Stops the service, then NATS and PostgreSQL. */
  stop(): Promise<void>;
}

/**
 * Starts PostgreSQL, NATS and the token-service (a process of its own, with a
 * random root key), and resolves once its output matches `ready`.
 *
 * @example
 * ```ts
 * const stack = await startBenchTokenService(/usage stream ready/);
 * ```
 */
export async function startBenchTokenService(
  ready: RegExp,
  /** More settings for the service (e.g. `LATCHKEY_KEYCHAIN_MASTER_KEY`). */
  env: Record<string, string> = {},
): Promise<BenchTokenService> {
  const postgres = await startPostgres();
  const nats = await startNats();
  const rootKey = randomBytes(32).toString("base64url");
  try {
    const [port, grpcPort] = [await findFreePort(), await findFreePort()];
    const service = await spawnService(
      "services/token-service/src/main.ts",
      {
        LATCHKEY_LOG_LEVEL: "info",
        DATABASE_URL: postgres.url,
        NATS_URL: nats.url,
        LATCHKEY_ROOT_KEY: rootKey,
        LATCHKEY_LISTEN: `127.0.0.1:${port}`,
        LATCHKEY_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
        ...env,
      },
      ready,
    );
    return {
      postgres,
      nats,
      service,
      grpcUrl: `http://127.0.0.1:${grpcPort}`,
      rootKey,
      async stop() {
        await service.stop().catch(() => {});
        await nats.dispose().catch(() => {});
        await postgres.stop().catch(() => {});
      },
    };
  } catch (error) {
    await nats.dispose().catch(() => {});
    await postgres.stop().catch(() => {});
    throw error;
  }
}
