import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startStack, stopChild, type Wrapping } from "./sidecar-stack.js";

// npm run bench:sidecar-cost [-- --tool callgrind|cpu-prof|gc --target sidecar|bare|both --requests N --warmup N]
//
// What one request costs the sidecar (cached key, access log on) and the bare undici proxy, measured
// in ways that hold up on a busy machine, where req/s ratios do not:
//   callgrind  instructions per request: the target runs under `valgrind --tool=callgrind`; after the
//              warm-up its counters are zeroed (callgrind_control -z), then `--requests` requests are
//              sent and the counters dumped. Repeatable to about 1 % whatever else the machine runs.
//   cpu-prof   the target runs with --cpu-prof; the samples taken during the measured requests (by the
//              profile's own monotonic clock) are summed by function: self µs per request, top 15.
//   gc         bytes allocated per request: the sum of `allocated` in --trace-gc-nvp lines written
//              during the measured requests, over the requests (GC granularity: use ≥ 50,000).
// Requests come from h2load (HTTP/1.1, 16 keep-alive connections) in its own process.

const run = promisify(execFile);

function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}
function count(name: string, fallback: number): number {
  const value = Number(option(name, String(fallback)));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer`);
  return value;
}

const tool = option("tool", "callgrind");
if (!["callgrind", "cpu-prof", "gc"].includes(tool)) throw new Error("--tool is callgrind, cpu-prof or gc");
const targetOption = option("target", "both");
if (!["sidecar", "bare", "both"].includes(targetOption)) throw new Error("--target is sidecar, bare or both");
const slow = tool === "callgrind";
const requests = count("requests", slow ? 4_000 : tool === "gc" ? 100_000 : 40_000);
const warmup = count("warmup", slow ? 6_000 : 20_000);

async function h2load(url: string, n: number, token: string): Promise<void> {
  const { stdout } = await run(
    "h2load",
    ["--h1", "-n", String(n), "-c", "16", "-m", "1", "-H", `authorization: Bearer ${token}`, url],
    { maxBuffer: 10 * 1024 * 1024 },
  ).catch((error: NodeJS.ErrnoException) => {
    // The command line holds the key: never print it.
    throw new Error(error.code === "ENOENT" ? "h2load is not installed (nghttp2-client)" : "h2load failed");
  });
  const status = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(stdout);
  const codes = /status codes: (\d+) 2xx/.exec(stdout);
  if (!status || Number(status[2]) > 0 || Number(codes?.[1]) !== n)
    throw new Error(`${url}: not every request got a 2xx:\n${stdout.replace(/Bearer \S+/g, "Bearer …")}`);
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}

/** Self time per function over the samples taken between `from` and `to` (µs, monotonic clock). */
function summarizeProfile(profile: Profile, from: number, to: number, n: number): string[] {
  const names = new Map<number, string>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^file:\/\//, "").replace(/^.*\/(node_modules|services|packages)\//, "$1/");
    names.set(
      node.id,
      url === ""
        ? functionName || "(anonymous)"
        : `${functionName || "(anonymous)"} ${file}:${lineNumber + 1}`,
    );
  }
  const self = new Map<string, number>();
  let time = profile.startTime;
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i] ?? 0;
    const duration = profile.timeDeltas[i + 1] ?? 0;
    if (time < from || time > to) continue;
    const name = names.get(profile.samples[i] as number) ?? "?";
    self.set(name, (self.get(name) ?? 0) + duration);
    if (name !== "(idle)") busy += duration;
  }
  const lines = [
    `busy (all but idle): ${(busy / n).toFixed(2)} µs per request`,
    "| self µs/request | function |",
    "|---|---|",
  ];
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 15))
    lines.push(`| ${(us / n).toFixed(2)} | ${name} |`);
  return lines;
}

async function measure(target: "sidecar" | "bare"): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), `latchkey-cost-${target}-`));
  const wrapping: Wrapping =
    tool === "callgrind"
      ? {
          prefix: [
            "valgrind",
            "--tool=callgrind",
            "--smc-check=all-non-file",
            `--callgrind-out-file=${join(dir, "callgrind.out.%p")}`,
          ],
        }
      : tool === "cpu-prof"
        ? { nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--cpu-prof-interval=100"] }
        : // V8 prints GC traces with C stdio, fully buffered into a file: line-buffer it.
          { prefix: ["stdbuf", "-oL"], nodeFlags: ["--trace-gc-nvp"] };
  const stack = await startStack({
    dir,
    ...(target === "sidecar" ? { sidecar: wrapping } : { bareProxy: wrapping }),
    startTimeoutMs: 300_000,
  });
  try {
    const url = `http://127.0.0.1:${target === "sidecar" ? stack.sidecarPort : stack.bareProxyPort}/`;
    const child = target === "sidecar" ? stack.sidecar : stack.bareProxy;
    const logFile = join(dir, target === "sidecar" ? "sidecar.log" : "bare-proxy.log");
    await h2load(url, warmup, stack.token);
    if (tool === "callgrind") {
      await run("callgrind_control", ["-z", String(child.pid)]);
      await h2load(url, requests, stack.token);
      await run("callgrind_control", ["-d", String(child.pid)]);
      const dumps = readdirSync(dir).filter((name) => name.startsWith("callgrind.out."));
      // The dump after zeroing is the newest (`callgrind.out.<pid>.1`).
      const last = dumps.sort().at(-1) ?? "";
      const totals = /^(?:totals|summary): (\d+)/m.exec(readFileSync(join(dir, last), "utf8"));
      const instructions = Number(totals?.[1] ?? Number.NaN);
      return [
        `${target}: ${(instructions / requests).toFixed(0)} instructions per request (callgrind, ${requests} requests after ${warmup} warm-up; dump in ${join(dir, last)})`,
      ];
    }
    if (tool === "gc") {
      const before = statSync(logFile).size;
      await h2load(url, requests, stack.token);
      const after = statSync(logFile).size;
      const text = readFileSync(logFile).subarray(before, after).toString("utf8");
      let allocated = 0;
      let scavenges = 0;
      for (const match of text.matchAll(/"?gc"?[=:]"?(\w+)"?.*?"?allocated"?[=:](\d+)/g)) {
        allocated += Number(match[2]);
        if (match[1] === "s") scavenges += 1;
      }
      return [
        `${target}: ${(allocated / requests).toFixed(0)} bytes allocated per request (${scavenges} scavenges over ${requests} requests, --trace-gc-nvp)`,
      ];
    }
    const from = Number(process.hrtime.bigint() / 1000n);
    await h2load(url, requests, stack.token);
    const to = Number(process.hrtime.bigint() / 1000n);
    await stopChild(child);
    const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"));
    if (file === undefined) throw new Error(`${target}: no profile written in ${dir}`);
    const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile;
    return [`${target}: cpu profile ${join(dir, file)}`, ...summarizeProfile(profile, from, to, requests)];
  } finally {
    await stack.stop();
    if (tool === "gc") rmSync(dir, { recursive: true, force: true });
  }
}

const targets =
  targetOption === "both" ? (["bare", "sidecar"] as const) : [targetOption as "bare" | "sidecar"];
for (const target of targets) {
  for (const line of await measure(target)) console.log(line);
}
