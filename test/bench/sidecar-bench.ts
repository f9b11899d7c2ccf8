import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Pool } from "undici";
import { findFreePort } from "../harness/free-port.js";
import { startNats } from "../harness/nats.js";
import { startNginxExample } from "../harness/nginx.js";
import { startPostgres } from "../harness/postgres.js";
import { adminClients } from "./admin-client.js";

// npm run bench:sidecar [-- --rounds 3 --seconds 5 --connections 64 --rate 1000 --rate-seconds 10 --rate-rounds 3]
//
// One run, every server in its own process, wrk (Debian's package) as the load generator:
//   direct       wrk → upstream (a trivial Node HTTP server)
//   bare proxy   wrk → node:http + undici Pool.stream proxy → upstream (no auth)
//   sidecar      wrk → latchkey-sidecar (cached key, access log on) → upstream
//   sidecar, key with a rate limit: the same, with a key whose own limit (never reached) is counted
//   nginx        wrk → nginx auth_request (+ proxy_cache) → sidecar forward-auth; nginx → upstream
// Each is measured `rounds` times, interleaved, and the median round is reported. Then a fixed
// 1,000 req/s open-loop run (a Node client in its own process; Debian has no wrk2) gives the p99
// latency the sidecar adds over going direct. The client keeps its schedule whatever the answers do
// (open loop: a slow server does not slow the sending), and times each request from the moment it is
// sent (its 1 ms timer granularity would otherwise dominate). The token-service runs on a throw-away
// PostgreSQL and NATS, as in production. BENCH_SIDECAR_NODE_FLAGS (e.g. "--trace-gc") go to the
// sidecar's node; its log is in the temp dir printed at the end.

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const role = process.argv[2];

if (role === "--upstream") await runUpstream(Number(process.argv[3]));
else if (role === "--bare-proxy") await runBareProxy(Number(process.argv[3]), Number(process.argv[4]));
else if (role === "--open-loop") await runOpenLoop();
else await main();

/** The app behind every target: a fixed small JSON answer. */
async function runUpstream(port: number): Promise<void> {
  const body = JSON.stringify({ ok: true, message: "hello from the upstream" });
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  server.listen(port, "127.0.0.1", () => process.stdout.write("listening\n"));
}

/** The yardstick: the smallest reasonable Node proxy, node:http in front of an undici keep-alive pool. */
async function runBareProxy(port: number, upstreamPort: number): Promise<void> {
  const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 128, pipelining: 1 });
  const hopByHop = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
  ];
  const server = createServer((req, res) => {
    const headers = { ...req.headers };
    for (const name of hopByHop) delete headers[name];
    pool
      .stream(
        {
          path: req.url ?? "/",
          method: (req.method ?? "GET") as "GET",
          headers,
          body: req.method === "GET" || req.method === "HEAD" ? null : req,
        },
        ({ statusCode, headers: responseHeaders }) => {
          for (const name of hopByHop) delete responseHeaders[name];
          res.writeHead(statusCode, responseHeaders as Record<string, string | string[]>);
          return res;
        },
      )
      .catch(() => {
        if (!res.headersSent) res.statusCode = 502;
        res.end();
      });
  });
  server.listen(port, "127.0.0.1", () => process.stdout.write("listening\n"));
}

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

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
}

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

/** Starts a child with output to a log file (a pipe into this process would cost it CPU under load). */
function startChild(args: string[], env: Record<string, string>, logFile: string): ChildProcess {
  const fd = openSync(logFile, "a");
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

async function waitForStatus(
  url: string,
  status: number,
  child: ChildProcess,
  logFile: string,
): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (child.exitCode !== null) throw new Error(`${url}: process exited:\n${readFileSync(logFile, "utf8")}`);
    const got = await new Promise<number>((resolve) => {
      const req = httpRequest(url, { agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", () => resolve(0));
      req.end();
    });
    if (got === status) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} did not answer ${status}:\n${readFileSync(logFile, "utf8")}`);
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

async function main(): Promise<void> {
  const rounds = flag("rounds", 3);
  const seconds = flag("seconds", 5);
  const connections = flag("connections", 64);
  const rate = flag("rate", 1000);
  const rateSeconds = flag("rate-seconds", 10);
  const rateRounds = flag("rate-rounds", 3);
  const dir = mkdtempSync(join(tmpdir(), "latchkey-sidecar-bench-"));
  const stops: Array<() => Promise<void>> = [];
  const load = loadavg()[0] ?? 0;
  try {
    const [postgres, nats] = await Promise.all([startPostgres(), startNats()]);
    stops.unshift(
      () => postgres.stop(),
      () => nats.dispose(),
    );
    const rootKey = randomBytes(32).toString("base64url");
    const ports = await Promise.all(Array.from({ length: 6 }, () => findFreePort()));
    const [upstreamPort, bareProxyPort, tokenPort, tokenGrpcPort, sidecarPort, sidecarAdminPort] = ports as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];

    const child = (args: string[], env: Record<string, string>, name: string) => {
      const logFile = join(dir, `${name}.log`);
      const process_ = startChild(args, env, logFile);
      stops.unshift(() => stopChild(process_));
      return { process: process_, logFile };
    };
    const upstream = child(
      ["--conditions=@latchkey/source", "--import", "tsx", SELF, "--upstream", String(upstreamPort)],
      {},
      "upstream",
    );
    const bare = child(
      [
        "--conditions=@latchkey/source",
        "--import",
        "tsx",
        SELF,
        "--bare-proxy",
        String(bareProxyPort),
        String(upstreamPort),
      ],
      {},
      "bare-proxy",
    );
    const tokenService = child(
      ["--conditions=@latchkey/source", "--import", "tsx", "services/token-service/src/main.ts"],
      {
        DATABASE_URL: postgres.url,
        NATS_URL: nats.url,
        LATCHKEY_ROOT_KEY: rootKey,
        LATCHKEY_LISTEN: `127.0.0.1:${tokenPort}`,
        LATCHKEY_GRPC_LISTEN: `127.0.0.1:${tokenGrpcPort}`,
        LATCHKEY_LOG_LEVEL: "info",
      },
      "token-service",
    );
    await waitForStatus(`http://127.0.0.1:${upstreamPort}/`, 200, upstream.process, upstream.logFile);
    await waitForStatus(`http://127.0.0.1:${bareProxyPort}/`, 200, bare.process, bare.logFile);
    for (let attempt = 0; ; attempt++) {
      if (tokenService.process.exitCode !== null || attempt > 600) {
        throw new Error(`token-service did not start:\n${readFileSync(tokenService.logFile, "utf8")}`);
      }
      if (readFileSync(tokenService.logFile, "utf8").includes("token-service ready")) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const sidecar = child(
      [
        ...(process.env.BENCH_SIDECAR_NODE_FLAGS ?? "").split(" ").filter(Boolean),
        "services/sidecar/bin/latchkey-sidecar.js",
      ],
      {
        LATCHKEY_UPSTREAM: `http://127.0.0.1:${upstreamPort}`,
        LATCHKEY_SIDECAR_LISTEN: `127.0.0.1:${sidecarPort}`,
        LATCHKEY_SIDECAR_ADMIN_LISTEN: `127.0.0.1:${sidecarAdminPort}`,
        LATCHKEY_TOKEN_SERVICE_URL: `http://127.0.0.1:${tokenGrpcPort}`,
        NATS_URL: nats.url,
        // The access log stays on, as in production (to a file here).
        LATCHKEY_LOG_LEVEL: "info",
      },
      "sidecar",
    );
    await waitForStatus(`http://127.0.0.1:${sidecarAdminPort}/readyz`, 200, sidecar.process, sidecar.logFile);
    const nginx = await startNginxExample({ sidecarPort, appPort: upstreamPort });
    stops.unshift(() => nginx.stop());

    const { teams, tokens } = adminClients(`http://127.0.0.1:${tokenGrpcPort}`, rootKey);
    const { team } = await teams.createTeam({ name: "bench" });
    const { token } = await tokens.issue({ teamId: team?.id ?? "", name: "bench", scopes: ["read"] });
    // The same sidecar with a key that has a rate limit of its own (never reached): what counting costs.
    const limited = await tokens.issue({
      teamId: team?.id ?? "",
      name: "bench-limited",
      scopes: ["read"],
      rateLimits: [{ name: "bench", limit: 1_000_000_000n, window: { seconds: 3600n, nanos: 0 } }],
    });

    const targets: Array<{ name: string; url: string; token?: string }> = [
      { name: "direct", url: `http://127.0.0.1:${upstreamPort}/` },
      { name: "bare undici proxy", url: `http://127.0.0.1:${bareProxyPort}/` },
      { name: "sidecar (cached key)", url: `http://127.0.0.1:${sidecarPort}/` },
      {
        name: "sidecar (key with a rate limit)",
        url: `http://127.0.0.1:${sidecarPort}/`,
        token: limited.token,
      },
      { name: "nginx auth_request + proxy_cache", url: `http://127.0.0.1:${nginx.port}/` },
    ];
    // Warm-up: fills the caches and lets the JIT settle.
    for (const target of targets) {
      const warm = await wrk(target.url, 2, connections, target.token ?? token);
      if (warm.non2xx > 0 || warm.rps === 0) throw new Error(`${target.name}: warm-up got non-2xx answers`);
    }
    const results = new Map<string, WrkResult[]>(targets.map((target) => [target.name, []]));
    for (let round = 0; round < rounds; round++) {
      for (const target of targets) {
        const result = await wrk(target.url, seconds, connections, target.token ?? token);
        if (result.non2xx > 0) throw new Error(`${target.name}: ${result.non2xx} non-2xx answers`);
        results.get(target.name)?.push(result);
      }
    }
    const medianOf = (name: string): WrkResult => {
      const sorted = [...(results.get(name) ?? [])].sort((a, b) => a.rps - b.rps);
      return sorted[Math.floor(sorted.length / 2)] as WrkResult;
    };

    // Fixed-rate runs, interleaved like the wrk rounds; the median p99 of each target is reported.
    const latencyRuns = new Map<string, Array<Awaited<ReturnType<typeof openLoop>>>>(
      targets.map((target) => [target.name, []]),
    );
    for (let round = 0; round < rateRounds; round++) {
      for (const target of targets) {
        const run = await openLoop(target.url, rate, rateSeconds, target.token ?? token);
        if (run.errors > 0) throw new Error(`${target.name}: ${run.errors} failed requests at ${rate} req/s`);
        latencyRuns.get(target.name)?.push(run);
      }
    }
    const latency = new Map(
      targets.map((target) => {
        const runs = [...(latencyRuns.get(target.name) ?? [])].sort((a, b) => a.p99 - b.p99);
        return [target.name, runs[Math.floor(runs.length / 2)]];
      }),
    );

    const direct = medianOf("direct");
    console.log(
      `\nwrk -t1 -c${connections}, ${seconds} s per run, median of ${rounds} interleaved rounds (load average at start ${load.toFixed(2)})`,
    );
    console.log(`| target | req/s | p50 ms | p99 ms | vs direct | at ${rate} req/s: p50 ms | p99 ms |`);
    console.log("|---|---|---|---|---|---|---|");
    for (const target of targets) {
      const result = medianOf(target.name);
      const fixed = latency.get(target.name);
      console.log(
        `| ${target.name} | ${result.rps.toFixed(0)} | ${result.p50.toFixed(2)} | ${result.p99.toFixed(2)} | ${(result.rps / direct.rps).toFixed(2)} | ${fixed?.p50.toFixed(2)} | ${fixed?.p99.toFixed(2)} |`,
      );
    }
    console.log("");
    for (const target of targets) {
      const all = (results.get(target.name) ?? []).map((result) => result.rps.toFixed(0)).join(", ");
      console.log(`${target.name}: req/s per round ${all}`);
    }
    const sidecarResult = medianOf("sidecar (cached key)");
    const addedP99 = (latency.get("sidecar (cached key)")?.p99 ?? 0) - (latency.get("direct")?.p99 ?? 0);
    const vsBare = sidecarResult.rps / medianOf("bare undici proxy").rps;
    const vsNginx = sidecarResult.rps / medianOf("nginx auth_request + proxy_cache").rps;
    const limitedVsUnlimited = medianOf("sidecar (key with a rate limit)").rps / sidecarResult.rps;
    const metrics = await (await fetch(`http://127.0.0.1:${sidecarAdminPort}/metrics`)).text();
    const counterValue = (name: string) =>
      /^(\S+) (\S+)$/m.exec(metrics.split("\n").find((line) => line.startsWith(`${name} `)) ?? "")?.[2];
    console.log(
      `\nsidecar verifier: cache hits ${counterValue("latchkey_verifier_cache_hits_total")}, misses ${counterValue("latchkey_verifier_cache_misses_total")}, stale re-verifications ${counterValue("latchkey_verifier_stale_reverifications_total")}`,
    );
    console.log(`added p99 at ${rate} req/s (sidecar vs direct): ${addedP99.toFixed(2)} ms`);
    if (process.env.BENCH_SIDECAR_NODE_FLAGS) console.log(`sidecar log: ${sidecar.logFile}`);
    console.log(
      `sidecar ratio_vs_bare_proxy=${vsBare.toFixed(2)} ratio_vs_nginx=${vsNginx.toFixed(2)} added_p99_ms_at_${rate}rps=${addedP99.toFixed(2)} rate_limited_key_vs_unlimited=${limitedVsUnlimited.toFixed(2)}`,
    );
  } finally {
    for (const stop of stops) await stop().catch(() => {});
    if (!process.env.BENCH_SIDECAR_NODE_FLAGS) rmSync(dir, { recursive: true, force: true });
  }
}
