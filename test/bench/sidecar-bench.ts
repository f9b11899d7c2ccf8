import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Pool } from "undici";
import { startNginxExample } from "../harness/nginx.js";
import { startOtlpCollector } from "../observability/otlp-collector.js";
import { ROOT, startStack } from "./sidecar-stack.js";

// npm run bench:sidecar [-- --rounds 5 --seconds 4 --connections 64 --rate 1000 --rate-seconds 5
//                          --rate-rounds 3 --tracing-rounds 3 --max-load 1.5]
//
// One run, every server in its own process, wrk (Debian's package) as the load generator:
//   direct              wrk → upstream (a trivial Node HTTP server)
//   bare proxy          wrk → node:http + undici Pool.stream proxy → upstream (no auth)
//   sidecar             wrk → latchkey-sidecar (cached key, access log on) → upstream
//   sidecar, limited    the same with a key whose own rate limit (never reached) is counted on every
//                       request: what the limiter costs (issue 10: ≥ 0.9× the unlimited key)
//   nginx + cache       wrk → nginx auth_request (+ proxy_cache of decisions, 5 s) → sidecar forward-auth;
//                       nginx → upstream
//   nginx, no cache     the same without proxy_cache: nginx asks the sidecar on every request, so a
//                       revoked key is refused as soon as the sidecar knows (the sidecar's own guarantee)
// Each is measured `rounds` times, interleaved (every round is printed), and the median round is
// reported. Then a fixed 1,000 req/s open-loop run against direct, the bare proxy and the sidecar (a
// Node client in its own process; Debian has no wrk2) gives the p99 each proxy adds over going direct.
// Last, what tracing costs (issue 14: ≥ 0.95× with tracing off), as a crossover: two more sidecar
// processes, one with tracing on (OTEL_TRACES_EXPORTER=otlp, parentbased_traceidratio at 1 %,
// exporting to a collector in this process) and one without, measured alternately for
// --tracing-rounds rounds; then both are restarted with the roles swapped (the untraced one started
// first this time) for as many rounds. Two identical untraced processes measured 0.94× of each other
// this way without the swap (the second process, the slot, not the setting), so the ratio is the
// geometric mean of the two halves' median ratios, which cancels a slot's bias.
// The client keeps its schedule whatever the answers do (open loop: a slow server does not slow the
// sending), and times each request from the moment it is sent. The token-service runs on a throw-away
// PostgreSQL and NATS, as in production. About 3 minutes with the defaults.
//
// Ratios from a busy machine are not worth reporting: when the 1-minute load average at the start is
// above --max-load (1.5), every ratio is marked `(load)` and the summary line says UNTRUSTED. On a
// 2-core machine, run it when nothing else runs; `--cpu-prof`, callgrind and allocation counts that
// hold up under load are in bench:sidecar-cost.
//
// BENCH_SIDECAR_NODE_FLAGS (e.g. "--trace-gc") go to the sidecar's node; its log is kept then.

const SELF = fileURLToPath(import.meta.url);

if (process.argv[2] === "--open-loop") await runOpenLoop();
else await main();

/** Open-loop load at a fixed rate; prints latency percentiles (ms) as one JSON line. */
async function runOpenLoop(): Promise<void> {
  const [url, rate, seconds, authorization] = process.argv.slice(3);
  const target = new URL(url ?? "");
  const perSecond = Number(rate);
  const total = Math.round(perSecond * (Number(seconds) + 1));
  const pool = new Pool(target.origin, { connections: 32, pipelining: 1 });
  const latencies: number[] = [];
  let errors = 0;
  let sent = 0;
  let finished = 0;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const fire = (scheduled: number) => {
      const sentAt = performance.now();
      pool
        .request({ path: target.pathname, method: "GET", headers: { authorization: authorization ?? "" } })
        .then(async (response) => {
          await response.body.dump();
          if (response.statusCode !== 200) errors++;
        })
        .catch(() => {
          errors++;
        })
        .finally(() => {
          // The first second warms up connections and the JIT; it is not counted.
          if (scheduled - start >= 1000) latencies.push(performance.now() - sentAt);
          if (++finished === total) resolve();
        });
    };
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * perSecond));
      while (sent < due) fire(start + (sent++ * 1000) / perSecond);
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  process.stdout.write(
    `${JSON.stringify({ p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1), errors })}\n`,
  );
  await pool.close();
}

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
}

function parseDuration(text: string | undefined): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text ?? "");
  if (match === null) return Number.NaN;
  const value = Number(match[1]);
  return match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value;
}

async function wrk(url: string, seconds: number, connections: number, token: string): Promise<WrkResult> {
  const run = promisify(execFile);
  let stdout: string;
  try {
    ({ stdout } = await run("wrk", [
      "-t1",
      `-c${connections}`,
      `-d${seconds}s`,
      "--latency",
      "-H",
      `Authorization: Bearer ${token}`,
      url,
    ]));
  } catch (error) {
    // The error lists the command line, which holds the key: say what failed without it.
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      code === "ENOENT" ? "wrk is not installed: apt-get install -y wrk" : `wrk failed (${String(code)})`,
    );
  }
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0),
    p50: parseDuration(/\s50%\s+(\S+)/.exec(stdout)?.[1]),
    p99: parseDuration(/\s99%\s+(\S+)/.exec(stdout)?.[1]),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0),
  };
}

async function openLoop(url: string, rate: number, seconds: number, token: string) {
  const run = promisify(execFile);
  const { stdout } = await run(
    process.execPath,
    [
      "--conditions=@latchkey/source",
      "--import",
      "tsx",
      SELF,
      "--open-loop",
      url,
      String(rate),
      String(seconds),
      `Bearer ${token}`,
    ],
    { cwd: ROOT, maxBuffer: 1024 * 1024 },
  );
  return JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as {
    p50: number;
    p99: number;
    max: number;
    errors: number;
  };
}

type OpenLoopResult = Awaited<ReturnType<typeof openLoop>>;

function medianBy<T>(values: readonly T[], key: (value: T) => number): T {
  const sorted = [...values].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor(sorted.length / 2)] as T;
}

async function main(): Promise<void> {
  const rounds = flag("rounds", 5);
  const seconds = flag("seconds", 4);
  const connections = flag("connections", 64);
  const rate = flag("rate", 1000);
  const rateSeconds = flag("rate-seconds", 5);
  const rateRounds = flag("rate-rounds", 3);
  const tracingRounds = flag("tracing-rounds", 3);
  const maxLoad = flag("max-load", 1.5);
  const loadAtStart = loadavg()[0] ?? 0;
  const busy = loadAtStart > maxLoad;
  if (busy)
    console.log(
      `load average ${loadAtStart.toFixed(2)} > ${maxLoad}: the machine is busy, ratios will be marked (load) and not trusted`,
    );
  const dir = mkdtempSync(join(tmpdir(), "latchkey-sidecar-bench-"));
  const sidecarFlags = (process.env.BENCH_SIDECAR_NODE_FLAGS ?? "").split(" ").filter(Boolean);
  // Where the traced sidecar exports its 1 %: a collector that decodes and keeps the spans.
  const collector = await startOtlpCollector();
  const stack = await startStack({ dir, sidecar: { nodeFlags: sidecarFlags } });
  const tracingEnv = {
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
    OTEL_TRACES_SAMPLER_ARG: "0.01",
  };
  const stops: Array<() => Promise<void>> = [() => stack.stop(), () => collector.close()];
  try {
    const { token } = stack;
    const nginx = await startNginxExample({ sidecarPort: stack.sidecarPort, appPort: stack.upstreamPort });
    stops.unshift(() => nginx.stop());
    const nginxNoCache = await startNginxExample({
      sidecarPort: stack.sidecarPort,
      appPort: stack.upstreamPort,
      withoutCache: true,
    });
    stops.unshift(() => nginxNoCache.stop());

    const DIRECT = "direct";
    const BARE = "bare undici proxy";
    const SIDECAR = "sidecar (cached key)";
    const SIDECAR_LIMITED = "sidecar (key with a rate limit)";
    const NGINX = "nginx auth_request + proxy_cache";
    const NGINX_NO_CACHE = "nginx auth_request, no cache";
    const targets: Array<{ name: string; url: string; token?: string }> = [
      { name: DIRECT, url: `http://127.0.0.1:${stack.upstreamPort}/` },
      { name: BARE, url: `http://127.0.0.1:${stack.bareProxyPort}/` },
      { name: SIDECAR, url: `http://127.0.0.1:${stack.sidecarPort}/` },
      { name: SIDECAR_LIMITED, url: `http://127.0.0.1:${stack.sidecarPort}/`, token: stack.limitedToken },
      { name: NGINX, url: `http://127.0.0.1:${nginx.port}/` },
      { name: NGINX_NO_CACHE, url: `http://127.0.0.1:${nginxNoCache.port}/` },
    ];
    // Warm-up: fills the caches and lets the JIT settle.
    for (const target of targets) {
      const warm = await wrk(target.url, 2, connections, target.token ?? token);
      if (warm.non2xx > 0 || warm.rps === 0) throw new Error(`${target.name}: warm-up got non-2xx answers`);
    }
    const results = new Map<string, WrkResult[]>(targets.map((target) => [target.name, []]));
    for (let round = 1; round <= rounds; round++) {
      const line: string[] = [];
      for (const target of targets) {
        const result = await wrk(target.url, seconds, connections, target.token ?? token);
        if (result.non2xx > 0) throw new Error(`${target.name}: ${result.non2xx} non-2xx answers`);
        results.get(target.name)?.push(result);
        line.push(`${target.name} ${result.rps.toFixed(0)}`);
      }
      const rps = (name: string) => results.get(name)?.at(-1)?.rps ?? 0;
      console.log(
        `round ${round}/${rounds} (load ${(loadavg()[0] ?? 0).toFixed(2)}): ${line.join(", ")} req/s; ` +
          `sidecar/bare ${(rps(SIDECAR) / rps(BARE)).toFixed(2)}, sidecar/nginx ${(rps(SIDECAR) / rps(NGINX)).toFixed(2)}, ` +
          `sidecar/nginx-no-cache ${(rps(SIDECAR) / rps(NGINX_NO_CACHE)).toFixed(2)}, ` +
          `limited/unlimited key ${(rps(SIDECAR_LIMITED) / rps(SIDECAR)).toFixed(2)}`,
      );
    }
    const medianOf = (name: string): WrkResult => medianBy(results.get(name) ?? [], (result) => result.rps);

    // Fixed-rate runs, interleaved like the wrk rounds; the median p99 of each target is reported.
    const latencyTargets = targets.filter((target) => [DIRECT, BARE, SIDECAR].includes(target.name));
    const latencyRuns = new Map<string, OpenLoopResult[]>(latencyTargets.map((target) => [target.name, []]));
    for (let round = 1; round <= rateRounds; round++) {
      const line: string[] = [];
      for (const target of latencyTargets) {
        const result = await openLoop(target.url, rate, rateSeconds, token);
        if (result.errors > 0)
          throw new Error(`${target.name}: ${result.errors} failed requests at ${rate} req/s`);
        latencyRuns.get(target.name)?.push(result);
        line.push(`${target.name} p99 ${result.p99.toFixed(2)} ms`);
      }
      console.log(`at ${rate} req/s, round ${round}/${rateRounds}: ${line.join(", ")}`);
    }
    const latency = (name: string) => medianBy(latencyRuns.get(name) ?? [], (result) => result.p99);

    // Tracing's cost, a crossover of two more sidecar processes (see the header).
    const halves: number[] = [];
    let tracedRequests = 0;
    for (const tracedFirst of [true, false]) {
      const started = [];
      for (const traced of tracedFirst ? [true, false] : [false, true]) {
        started.push({
          traced,
          sidecar: await stack.startExtraSidecar(
            traced ? "sidecar-traced" : "sidecar-untraced",
            traced ? tracingEnv : {},
          ),
        });
      }
      const ratios: number[] = [];
      for (const { sidecar } of started)
        await wrk(`http://127.0.0.1:${sidecar.port}/`, 2, connections, token);
      for (let round = 1; round <= tracingRounds; round++) {
        const measured = new Map<boolean, number>();
        // Alternate which of the two goes first in a round.
        const order = round % 2 === 1 ? started : [...started].reverse();
        for (const { traced, sidecar } of order) {
          const result = await wrk(`http://127.0.0.1:${sidecar.port}/`, seconds, connections, token);
          if (result.non2xx > 0) throw new Error(`tracing comparison: ${result.non2xx} non-2xx answers`);
          measured.set(traced, result.rps);
          if (traced) tracedRequests += result.rps * seconds;
        }
        ratios.push((measured.get(true) ?? 0) / (measured.get(false) ?? 1));
      }
      for (const { sidecar } of started) await sidecar.stop();
      const half = medianBy(ratios, (ratio) => ratio);
      halves.push(half);
      console.log(
        `tracing at 1 %, ${tracedFirst ? "traced" : "untraced"} process started first: traced/untraced per round ${ratios.map((r) => r.toFixed(2)).join(", ")}; median ${half.toFixed(2)}`,
      );
    }
    const tracedVsUntraced = Math.sqrt((halves[0] ?? 0) * (halves[1] ?? 0));
    const loadAtEnd = loadavg()[0] ?? 0;
    const mark = busy ? " (load)" : "";

    const direct = medianOf(DIRECT);
    console.log(
      `\nwrk -t1 -c${connections}, ${seconds} s per run, median of ${rounds} interleaved rounds; load average ${loadAtStart.toFixed(2)} at the start, ${loadAtEnd.toFixed(2)} at the end`,
    );
    console.log(`| target | req/s | p50 ms | p99 ms | vs direct | at ${rate} req/s: p50 ms | p99 ms |`);
    console.log("|---|---|---|---|---|---|---|");
    for (const target of targets) {
      const result = medianOf(target.name);
      const fixed = latencyRuns.has(target.name) ? latency(target.name) : undefined;
      console.log(
        `| ${target.name} | ${result.rps.toFixed(0)} | ${result.p50.toFixed(2)} | ${result.p99.toFixed(2)} | ${(result.rps / direct.rps).toFixed(2)}${mark} | ${fixed?.p50.toFixed(2) ?? "–"} | ${fixed?.p99.toFixed(2) ?? "–"} |`,
      );
    }
    const sidecarResult = medianOf(SIDECAR);
    const vsBare = sidecarResult.rps / medianOf(BARE).rps;
    const vsNginx = sidecarResult.rps / medianOf(NGINX).rps;
    const vsNginxNoCache = sidecarResult.rps / medianOf(NGINX_NO_CACHE).rps;
    const limitedVsUnlimited = medianOf(SIDECAR_LIMITED).rps / sidecarResult.rps;
    // The traced sidecars did trace: about 1 % of their requests reached the collector as server spans.
    const exportedSpans = collector.spans.filter((span) => span.service === "latchkey-sidecar").length;
    const addedSidecar = latency(SIDECAR).p99 - latency(DIRECT).p99;
    const addedBare = latency(BARE).p99 - latency(DIRECT).p99;
    const metrics = await (await fetch(`http://127.0.0.1:${stack.sidecarAdminPort}/metrics`)).text();
    const counterValue = (name: string) =>
      /^(\S+) (\S+)$/m.exec(metrics.split("\n").find((line) => line.startsWith(`${name} `)) ?? "")?.[2];
    console.log(
      `\nsidecar verifier: cache hits ${counterValue("latchkey_verifier_cache_hits_total")}, misses ${counterValue("latchkey_verifier_cache_misses_total")}, stale re-verifications ${counterValue("latchkey_verifier_stale_reverifications_total")}`,
    );
    console.log("| goal | median | met |");
    console.log("|---|---|---|");
    const goal = (what: string, value: string, met: boolean) =>
      console.log(`| ${what} | ${value}${mark} | ${busy ? "not judged (load)" : met ? "yes" : "**no**"} |`);
    goal("sidecar ≥ 0.95× bare undici proxy", `${vsBare.toFixed(2)}×`, vsBare >= 0.95);
    goal("sidecar ≥ 0.5× nginx auth_request + proxy_cache", `${vsNginx.toFixed(2)}×`, vsNginx >= 0.5);
    goal("sidecar ≥ 1.0× nginx auth_request, no cache", `${vsNginxNoCache.toFixed(2)}×`, vsNginxNoCache >= 1);
    goal(
      "sidecar, key with a rate limit ≥ 0.9× the same without",
      `${limitedVsUnlimited.toFixed(2)}×`,
      limitedVsUnlimited >= 0.9,
    );
    goal(
      "sidecar with tracing on (1 % sampled) ≥ 0.95× tracing off",
      `${tracedVsUntraced.toFixed(2)}× (${exportedSpans} spans exported for ~${Math.round(tracedRequests)} requests)`,
      tracedVsUntraced >= 0.95,
    );
    goal(
      `p99 added at ${rate} req/s ≤ bare proxy's + 0.2 ms`,
      `sidecar +${addedSidecar.toFixed(2)} ms, bare proxy +${addedBare.toFixed(2)} ms`,
      addedSidecar <= addedBare + 0.2,
    );
    if (sidecarFlags.length > 0) console.log(`sidecar log: ${stack.sidecarLog}`);
    console.log(
      `${busy ? `UNTRUSTED (load average ${loadAtStart.toFixed(2)} > ${maxLoad}) ` : ""}sidecar ratio_vs_bare_proxy=${vsBare.toFixed(2)} ratio_vs_nginx=${vsNginx.toFixed(2)} ratio_vs_nginx_no_cache=${vsNginxNoCache.toFixed(2)} added_p99_ms_at_${rate}rps=${addedSidecar.toFixed(2)} bare_added_p99_ms=${addedBare.toFixed(2)} rate_limited_key_vs_unlimited=${limitedVsUnlimited.toFixed(2)} tracing_1pct_vs_off=${tracedVsUntraced.toFixed(2)}`,
    );
  } finally {
    for (const stop of stops) await stop().catch(() => {});
    if (sidecarFlags.length === 0) rmSync(dir, { recursive: true, force: true });
  }
}
