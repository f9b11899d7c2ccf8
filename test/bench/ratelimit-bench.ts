import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import { startRecordingUpstream } from "../sidecar/recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import { adminClients } from "./admin-client.js";
import { startBenchTokenService } from "./bench-token-service.js";

// npm run bench:ratelimit -- --sidecars 4 --limit 1000 --window 10s
// N sidecar processes share one key's limit (its tier's, from LATCHKEY_RATE_LIMITS) over a real
// NATS; the token-service runs on real PostgreSQL. Two phases, each on a fresh key starting at a
// window boundary (windows are aligned to the epoch):
//   under: the sidecars together get 89 % of the limit per window for two windows; every 429 is a
//          false one (false_429).
//   over:  each sidecar alone gets more than the limit in one window (--overload × limit); the
//          requests admitted in that window over the limit is the overshoot (ratio = admitted/limit).
// The load is open-loop (sent on a schedule, not waiting for answers), spread evenly in time.

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? "") : fallback;
}
function positive(name: string, fallback: string): number {
  const value = Number(flag(name, fallback));
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}
const sidecarCount = Math.round(positive("sidecars", "4"));
const limit = Math.round(positive("limit", "1000"));
const windowText = flag("window", "10s");
const windowMatch = /^(\d+)(s|m)$/.exec(windowText);
if (windowMatch === null) throw new Error("--window must be like 10s or 1m");
const windowMs = Number(windowMatch[1]) * (windowMatch[2] === "m" ? 60_000 : 1_000);
const overload = positive("overload", "1.2");
const underShare = positive("under", "0.89");
const syncMs = Math.round(positive("sync-ms", "50"));

const stack = await startBenchTokenService(/grpc server listening/);
const { nats, rootKey, grpcUrl: tokenServiceUrl } = stack;
const upstream = await startRecordingUpstream();
const dir = await mkdtemp(join(tmpdir(), "latchkey-ratelimit-bench-"));
const stops: Array<() => Promise<void>> = [
  () => stack.stop(),
  () => upstream.app.close(),
  () => rm(dir, { recursive: true, force: true }),
];
try {
  const { teams, tokens } = adminClients(tokenServiceUrl, rootKey);
  const teamId = (await teams.createTeam({ name: "bench-ratelimit" })).team?.id ?? "";
  const limitsFile = join(dir, "rate-limits.yaml");
  await writeFile(limitsFile, `tiers:\n  bench: [{ name: bench, limit: ${limit}, window: ${windowText} }]\n`);
  const sidecars: SidecarProcess[] = await Promise.all(
    Array.from({ length: sidecarCount }, () =>
      spawnSidecar({
        upstream: upstream.url,
        tokenServiceUrl,
        natsUrl: nats.url,
        env: {
          LATCHKEY_RATE_LIMITS: limitsFile,
          LATCHKEY_RATE_LIMIT_SYNC_MS: String(syncMs),
          LATCHKEY_LOG_LEVEL: "info",
        },
      }),
    ),
  );
  stops.unshift(() => Promise.all(sidecars.map((s) => s.stop())).then(() => {}));
  const pools = sidecars.map((s) => new Pool(s.url, { connections: 32 }));
  stops.unshift(() => Promise.all(pools.map((p) => p.close())).then(() => {}));
  // Wait until every sidecar hears all the others.
  for (let tries = 0; ; tries += 1) {
    const peers = await Promise.all(sidecars.map(async (s) => (await fetch(`${s.adminUrl}/metrics`)).text()));
    if (peers.every((text) => text.includes(`latchkey_sidecar_rate_limit_peers ${sidecarCount}`))) break;
    if (tries > 100) throw new Error("the sidecars did not find each other over NATS");
    await sleep(200);
  }

  async function issue(name: string): Promise<string> {
    const issued = await tokens.issue({ teamId, name, scopes: ["read"], metadata: { tier: "bench" } });
    const token = issued.token;
    // Warm every sidecar's cache, so the run measures the limiter and not the first Verify.
    // (These requests count: the phase starts at the next window, after they have aged out.)
    await Promise.all(
      pools.map((pool) =>
        pool
          .request({ path: "/warm", method: "GET", headers: { authorization: `Bearer ${token}` } })
          .then((r) => r.body.dump()),
      ),
    );
    return token;
  }

  /** Sends `perSidecarPerWindow` requests to each sidecar, evenly spread over `windows` windows. */
  async function drive(token: string, perSidecarPerWindow: number, windows: number) {
    // Start at a window boundary, two windows after the warm-up requests, so they weigh nothing.
    const start = (Math.floor(Date.now() / windowMs) + 2) * windowMs;
    await sleep(start - Date.now());
    const total = Math.round(perSidecarPerWindow * windows);
    const intervalMs = (windowMs * windows) / total;
    let admitted = 0;
    let refused = 0;
    let other = 0;
    const headers = { authorization: `Bearer ${token}` };
    const sends: Promise<void>[] = [];
    const tickMs = 5;
    for (let sent = 0; sent < total; ) {
      const due = Math.min(total, Math.floor((Date.now() - start) / intervalMs) + 1);
      for (; sent < due; sent += 1) {
        for (const pool of pools) {
          sends.push(
            pool.request({ path: "/bench", method: "GET", headers }).then(
              async (response) => {
                await response.body.dump();
                if (response.statusCode === 200) admitted += 1;
                else if (response.statusCode === 429) refused += 1;
                else other += 1;
              },
              () => {
                other += 1;
              },
            ),
          );
        }
      }
      await sleep(tickMs);
    }
    await Promise.all(sends);
    return { admitted, refused, other, seconds: (Date.now() - start) / 1000 };
  }

  const under = await drive(await issue("under"), (underShare * limit) / sidecarCount, 2);
  console.log(
    `under: ${sidecarCount} sidecars × ${((underShare * limit) / sidecarCount).toFixed(0)} per window for 2 windows: admitted=${under.admitted} 429=${under.refused} other=${under.other} in ${under.seconds.toFixed(1)} s`,
  );
  const over = await drive(await issue("over"), overload * limit, 1);
  console.log(
    `over: ${sidecarCount} sidecars × ${(overload * limit).toFixed(0)} in one window: admitted=${over.admitted} 429=${over.refused} other=${over.other} in ${over.seconds.toFixed(1)} s`,
  );
  const ratio = over.admitted / limit;
  console.log(
    `ratelimit sidecars=${sidecarCount} limit=${limit} admitted=${over.admitted} ratio=${ratio.toFixed(3)} false_429=${under.refused} window=${windowText} sync_ms=${syncMs} offered=${Math.round(overload * limit * sidecarCount)}`,
  );
  if (under.other + over.other > 0) process.exitCode = 1;
} finally {
  for (const stop of stops) await stop().catch((error: unknown) => console.error(error));
}
