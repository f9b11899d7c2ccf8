import { setTimeout as sleep } from "node:timers/promises";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { UsageGranularity } from "@latchkey/proto";
import { Pool } from "undici";
import { startDemoApp } from "../../services/sidecar/demo/demo-app.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import { adminClients } from "./admin-client.js";
import { startBenchTokenService } from "./bench-token-service.js";

// npm run bench:usage -- --sidecars 4 --requests 20000
// Starts the token-service on real PostgreSQL and NATS and N sidecar processes
// in front of the demo app, sends M requests spread over the sidecars and 8
// keys (after the first request per key and sidecar, all cache hits), then
// reads GetUsage for the team until it counts every request, or gives up
// after ten flush intervals. The goal: after one flush interval the count is
// exact (no request lost, none counted twice).

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive whole number`);
  return value;
}

const sidecarCount = flag("sidecars", 4);
const requestCount = flag("requests", 20_000);
const flushMs = flag("flush-ms", 1_000);
const concurrency = flag("concurrency", 32);
const KEYS = 8;

const stack = await startBenchTokenService(/usage stream ready/);
const app = await startDemoApp({ port: 0, host: "127.0.0.1" });
const stops: Array<() => Promise<void>> = [() => stack.stop(), () => app.close()];
const sidecars: SidecarProcess[] = [];
try {
  const { teams, tokens } = adminClients(stack.grpcUrl, stack.rootKey);
  const teamId = (await teams.createTeam({ name: "bench-usage" })).team?.id ?? "";
  const keys: string[] = [];
  for (let i = 0; i < KEYS; i++)
    keys.push((await tokens.issue({ teamId, name: `k${i}`, scopes: ["read"] })).token);

  for (let i = 0; i < sidecarCount; i++) {
    sidecars.push(
      await spawnSidecar({
        upstream: `http://127.0.0.1:${app.port}`,
        tokenServiceUrl: stack.grpcUrl,
        natsUrl: stack.nats.url,
        env: { LATCHKEY_USAGE_FLUSH_MS: String(flushMs) },
      }),
    );
  }
  const pools = sidecars.map((sidecar) => new Pool(sidecar.url, { connections: concurrency }));
  stops.unshift(async () => {
    for (const pool of pools) await pool.close();
  });

  let next = 0;
  let failed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < requestCount; i = next++) {
        const pool = pools[i % pools.length] as Pool;
        const token = keys[Math.floor(i / pools.length) % KEYS] as string;
        const response = await pool.request({
          method: "GET",
          path: "/bench",
          headers: { authorization: `Bearer ${token}` },
        });
        await response.body.dump();
        if (response.statusCode !== 200) failed += 1;
      }
    }),
  );
  const sentAt = performance.now();
  const rps = Math.round(requestCount / ((sentAt - started) / 1000));

  const counted = async () =>
    Number(
      (
        await tokens.getUsage({
          teamId,
          startTime: timestampFromMs(Date.now() - 3_600_000),
          granularity: UsageGranularity.HOUR,
        })
      ).total,
    );
  // One flush interval (plus the consumer's turn), then read until exact or ten intervals have passed.
  await sleep(flushMs);
  let total = await counted();
  while (total !== requestCount && performance.now() - sentAt < 10 * flushMs) {
    await sleep(50);
    total = await counted();
  }
  const settledMs = Math.round(performance.now() - sentAt);
  const droppedText = await Promise.all(
    sidecars.map(async (s) => (await fetch(`${s.adminUrl}/metrics`)).text()),
  );
  const dropped = droppedText
    .map((text) => Number(/latchkey_verifier_usage_dropped_requests_total (\d+)/.exec(text)?.[1] ?? 0))
    .reduce((a, b) => a + b, 0);
  console.log(
    `\nUsage: ${requestCount} requests over ${sidecarCount} sidecars and ${KEYS} keys at ${rps} req/s ` +
      `(${failed} not 200), flush every ${flushMs} ms; GetUsage exact ${settledMs} ms after the last response; ` +
      `dropped by backlogs ${dropped}`,
  );
  console.log(
    `usage sidecars=${sidecarCount} requests=${requestCount} counted=${total} exact=${total === requestCount && failed === 0 ? "yes" : "no"}`,
  );
  process.exitCode = total === requestCount && failed === 0 ? 0 : 1;
} finally {
  for (const sidecar of sidecars) await sidecar.stop().catch(() => {});
  for (const stop of stops) await stop().catch(() => {});
}
