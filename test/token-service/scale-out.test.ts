// Defect 10 of issue 17: gRPC keeps one HTTP/2 connection per client, and a
// ClusterIP Service balances connections, so a token-service replica that the
// HPA adds gets no Verify traffic from clients already connected. With
// LATCHKEY_GRPC_MAX_CONNECTION_AGE_MS the grpc-js listener sends GOAWAY to
// aged connections; the client reconnects through the Service and lands on
// the new replica too. Two real token-service processes on one PostgreSQL,
// a connection-level balancer in front (what kube-proxy does), the verifier
// SDK with steady Verify calls; each replica's own /metrics says how many
// calls it answered.
import { setTimeout as sleep } from "node:timers/promises";
import { generateToken } from "@latchkey/token";
import { createVerifier, type Verifier } from "@latchkey/verifier";
import { describe, expect, it } from "vitest";
import { type ServiceProcess, spawnService } from "../bench/service-process.js";
import { findFreePort, freshDatabaseUrl } from "../harness/index.js";
import { sample, scrape } from "./scrape-metrics.js";
import { ROOT_KEY } from "./start.js";
import { startTcpBalancer, type TcpBalancer } from "./tcp-balancer.js";

const MAIN = "services/token-service/src/main.ts";
const MAX_AGE_MS = 1_500;

interface Replica {
  readonly process: ServiceProcess;
  readonly grpcPort: number;
  readonly metricsPort: number;
}

async function startReplica(databaseUrl: string, maxAgeMs: number): Promise<Replica> {
  const [grpcPort, metricsPort] = [await findFreePort(), await findFreePort()];
  const process = await spawnService(
    MAIN,
    {
      DATABASE_URL: databaseUrl,
      LATCHKEY_ROOT_KEY: ROOT_KEY,
      LATCHKEY_LISTEN: "127.0.0.1:0",
      LATCHKEY_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
      LATCHKEY_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
      LATCHKEY_GRPC_MAX_CONNECTION_AGE_MS: String(maxAgeMs),
      LATCHKEY_GRPC_MAX_CONNECTION_AGE_GRACE_MS: "1000",
      LATCHKEY_LOG_LEVEL: "info",
      LATCHKEY_SHUTDOWN_TIMEOUT_MS: "1000",
    },
    /token-service ready/,
  );
  return { process, grpcPort, metricsPort };
}

/** NOT_FOUND answers the replica has given: each distinct unknown token is one database lookup there. */
async function answered(replica: Replica): Promise<number> {
  return (
    sample(await scrape(replica.metricsPort), "latchkey_token_service_verify_total", {
      result: "NOT_FOUND",
    }) ?? 0
  );
}

/** Verify calls, one after another on each of `lanes`, with tokens nobody has seen (cache misses everywhere). */
function steadyLoad(verifier: Verifier, lanes = 4) {
  const counts = { ok: 0, failed: 0 };
  let running = true;
  const loops = Array.from({ length: lanes }, async () => {
    while (running) {
      const outcome = await verifier.verify(generateToken({ prefix: "lk", environment: "live" }));
      if (!outcome.ok && outcome.code === "NOT_FOUND") counts.ok += 1;
      else counts.failed += 1;
      await sleep(2);
    }
  });
  return {
    counts,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function scaleOut(maxAgeMs: number) {
  const databaseUrl = await freshDatabaseUrl("scale");
  const first = await startReplica(databaseUrl, maxAgeMs);
  const stops: Array<() => Promise<void>> = [() => first.process.stop()];
  try {
    const balancer: TcpBalancer = await startTcpBalancer([first.grpcPort]);
    stops.unshift(() => balancer.close());
    const verifier = createVerifier({ tokenService: `http://127.0.0.1:${balancer.port}`, prefix: "lk" });
    stops.unshift(() => verifier.close());
    const load = steadyLoad(verifier);
    stops.unshift(() => load.stop());
    await sleep(500);
    expect(load.counts.ok).toBeGreaterThan(0);

    // The HPA adds a replica: its endpoint joins the Service.
    const second = await startReplica(databaseUrl, maxAgeMs);
    stops.push(() => second.process.stop());
    balancer.addBackend(second.grpcPort);
    const before = { first: await answered(first), calls: load.counts.ok };
    // Long enough for the client's connection to age out (+10 % jitter) and
    // the grace to end, and then for calls to run on the new connection.
    await sleep(MAX_AGE_MS * 1.1 + 1_000 + 1_500);
    await load.stop();
    const calls = load.counts.ok - before.calls;
    const secondServed = await answered(second);
    const firstServed = (await answered(first)) - before.first;
    return { calls, firstServed, secondServed, failed: load.counts.failed, balancer, second };
  } finally {
    for (const stop of stops) await stop();
  }
}

describe("a token-service replica added while verifiers are connected", () => {
  it("serves a share of the Verify calls within the max connection age, and no call fails", async () => {
    const result = await scaleOut(MAX_AGE_MS);
    expect(result.failed).toBe(0);
    expect(result.calls).toBeGreaterThan(100);
    // Every call was answered by one of the two replicas (give or take the
    // four in flight while the counters were read).
    expect(Math.abs(result.firstServed + result.secondServed - result.calls)).toBeLessThanOrEqual(4);
    expect(result.balancer.connectionsTo(result.second.grpcPort)).toBeGreaterThan(0);
    expect(result.secondServed / result.calls).toBeGreaterThan(0.2);
    console.info(
      `scale-out: ${result.calls} calls after the second replica joined, ${result.secondServed} served by it`,
    );
  }, 60_000);

  it("gets none of them when connections never age out (LATCHKEY_GRPC_MAX_CONNECTION_AGE_MS=0)", async () => {
    const result = await scaleOut(0);
    expect(result.failed).toBe(0);
    expect(result.calls).toBeGreaterThan(100);
    expect(result.secondServed).toBe(0);
    expect(result.balancer.connectionsTo(result.second.grpcPort)).toBe(0);
  }, 60_000);
});
