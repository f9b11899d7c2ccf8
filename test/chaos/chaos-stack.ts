// The system the chaos run attacks, every part a real process: PostgreSQL, a three-node NATS
// JetStream cluster, two token-service replicas behind a TCP balancer (a Kubernetes Service), four
// sidecars in front of one upstream app. Every NATS client reaches the cluster through a relay of
// its own (partition-relay.ts), so the run can cut one process off from NATS without a sound.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { type ServiceProcess, spawnService } from "../bench/service-process.js";
import { findFreePort } from "../harness/free-port.js";
import { type NatsCluster, startNatsCluster } from "../harness/nats-cluster.js";
import { type PostgresServer, startPostgres } from "../harness/postgres.js";
import { type PartitionRelay, startPartitionRelay } from "../revocation/partition-relay.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import type { ChaosSettings } from "./chaos-settings.js";

/** One warning or error line a process logged. */
export interface ChaosWarning {
  /** performance.now() when it was read. */
  readonly at: number;
  /** The process (`ts-a`, `sc-2`, …). */
  readonly source: string;
  /** Its `msg` field. */
  readonly message: string;
}

/** A token-service replica: fixed ports, so a restarted one is found where the old one was. */
export interface ChaosReplica {
  readonly name: string;
  readonly grpcPort: number;
  readonly metricsUrl: string;
  /** Its own way to NATS. */
  readonly natsRelay: PartitionRelay;
  process: ServiceProcess | undefined;
}

/** A sidecar slot: the process changes on restart (new ports), the relay stays. */
export interface ChaosSidecar {
  readonly name: string;
  readonly natsRelay: PartitionRelay;
  process: SidecarProcess | undefined;
}

/** The running system. */
export interface ChaosStack {
  readonly postgres: PostgresServer;
  readonly nats: NatsCluster;
  readonly replicas: readonly ChaosReplica[];
  readonly sidecars: readonly ChaosSidecar[];
  /** Native gRPC URL of the balancer in front of the replicas (what sidecars and the admin use). */
  readonly tokenServiceUrl: string;
  readonly rootKey: string;
  /** Every warning and error the processes logged (pino level 40 and up), in order. */
  readonly warnings: ChaosWarning[];
  /** Starts (or restarts) a replica with its first settings. */
  startReplica(replica: ChaosReplica): Promise<void>;
  /** Starts (or restarts) a sidecar; its URL changes. */
  startSidecar(sidecar: ChaosSidecar): Promise<void>;
  /** Stops everything, processes first. */
  stop(): Promise<void>;
}

/**
 * Starts the stack and resolves once every process is ready.
 *
 * @example
 * ```ts
 * const stack = await startChaosStack(settings);
 * await stack.stop();
 * ```
 */
export async function startChaosStack(settings: ChaosSettings): Promise<ChaosStack> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
  };
  try {
    const [postgres, nats, upstream] = await Promise.all([
      startPostgres(),
      startNatsCluster(),
      startUpstream(),
    ]);
    cleanups.push(
      () => postgres.stop(),
      () => nats.dispose(),
      () => new Promise((resolve) => upstream.server.close(resolve)),
    );
    await nats.waitForLeader();
    const warnings: ChaosWarning[] = [];
    const collectWarnings = (source: string, child: ChildProcess) => {
      let partial = "";
      const onData = (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) {
          const match = /"level":(\d+).*?"msg":"([^"]*)"/.exec(line);
          if (match !== null && Number(match[1]) >= 40) {
            warnings.push({ at: performance.now(), source, message: match[2] ?? "" });
          }
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
    };
    const rootKey = randomBytes(32).toString("base64url");

    const replicas: ChaosReplica[] = [];
    for (const name of ["ts-a", "ts-b"]) {
      const natsRelay = await startPartitionRelay(nats.urls);
      cleanups.push(() => natsRelay.close());
      replicas.push({
        name,
        grpcPort: await findFreePort(),
        metricsUrl: `http://127.0.0.1:${await findFreePort()}`,
        natsRelay,
        process: undefined,
      });
    }
    const balancer = await startPartitionRelay(replicas.map((r) => `http://127.0.0.1:${r.grpcPort}`));
    cleanups.push(() => balancer.close());
    const tokenServiceUrl = balancer.url;

    const startReplica = async (replica: ChaosReplica) => {
      await replica.process?.stop();
      replica.process = await spawnService(
        "services/token-service/src/main.ts",
        {
          LATCHKEY_LOG_LEVEL: "info",
          DATABASE_URL: postgres.url,
          NATS_URL: replica.natsRelay.url,
          LATCHKEY_ROOT_KEY: rootKey,
          LATCHKEY_LISTEN: `127.0.0.1:${await findFreePort()}`,
          LATCHKEY_GRPC_LISTEN: `127.0.0.1:${replica.grpcPort}`,
          LATCHKEY_METRICS_LISTEN: new URL(replica.metricsUrl).host,
          LATCHKEY_STREAM_REPLICAS: "3",
          LATCHKEY_OUTBOX_CURRENCY_MS: String(settings.outboxCurrencyMs),
          LATCHKEY_SHUTDOWN_TIMEOUT_MS: "500",
        },
        /token-service ready/,
        60_000,
      );
      collectWarnings(replica.name, replica.process.child);
    };
    cleanups.push(async () => {
      for (const replica of replicas) await replica.process?.stop();
    });
    // One at a time: the first migrates the database and creates the streams.
    for (const replica of replicas) await startReplica(replica);

    const sidecars: ChaosSidecar[] = [];
    for (let i = 0; i < settings.sidecars; i++) {
      const natsRelay = await startPartitionRelay(nats.urls);
      cleanups.push(() => natsRelay.close());
      sidecars.push({ name: `sc-${i + 1}`, natsRelay, process: undefined });
    }
    const startSidecar = async (sidecar: ChaosSidecar) => {
      await sidecar.process?.stop();
      sidecar.process = await spawnSidecar({
        upstream: upstream.url,
        tokenServiceUrl,
        natsUrl: sidecar.natsRelay.url,
        env: { LATCHKEY_MAX_STALE_MS: String(settings.maxStaleMs) },
      });
      collectWarnings(sidecar.name, sidecar.process.process.child);
    };
    cleanups.push(async () => {
      for (const sidecar of sidecars) await sidecar.process?.stop();
    });
    await Promise.all(sidecars.map(startSidecar));

    return {
      postgres,
      nats,
      replicas,
      sidecars,
      tokenServiceUrl,
      rootKey,
      warnings,
      startReplica,
      startSidecar,
      stop: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** The app behind every sidecar: 200 and a short body for anything that gets through. */
async function startUpstream(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain" }).end("upstream");
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return { server, url: `http://127.0.0.1:${port}` };
}
