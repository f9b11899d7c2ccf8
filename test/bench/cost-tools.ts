import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { stopChild, type Wrapping } from "./sidecar-stack.js";

// Per-request cost measurements that hold up on a busy machine (bench:sidecar-cost, bench:verify-cost):
//   callgrind  instructions per request: the process runs under `valgrind --tool=callgrind`; after the
//              warm-up its counters are zeroed (callgrind_control -z) and dumped around 10 s idle and
//              then around the requests; the idle rate times the requests' duration is taken off (what
//              timers and heartbeats cost would otherwise count per request by how slow the machine
//              is). User-space only (the kernel's side is what `syscalls` counts). Compare only runs
//              that reached about the same request rate: how many requests one event-loop turn
//              serves changes the count per request (docs/performance.md).
//   cpu-prof   the process runs with --cpu-prof; the samples taken during the measured requests (by the
//              profile's own monotonic clock) are summed by function: self µs per request, top 15.
//              Time in system calls includes waiting for a core on a busy machine.
//   syscalls   system calls per request (all threads), counted by `strace -c -f` attached for the
//              measured requests.
//   gc         bytes allocated per request: the sum of `allocated` in --trace-gc-nvp lines written
//              during the measured requests, over the requests (GC granularity: use ≥ 50,000).

export const TOOLS = ["callgrind", "cpu-prof", "syscalls", "gc"] as const;

/** The value after `--name` on the command line, or `fallback`. */
export function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

/** A positive integer `--name`, or `fallback`. */
export function count(name: string, fallback: number): number {
  const value = Number(option(name, String(fallback)));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer`);
  return value;
}

/** The `--tool` asked for (callgrind by default). */
export function toolOption(): Tool {
  const tool = option("tool", "callgrind");
  if (!(TOOLS as readonly string[]).includes(tool)) throw new Error(`--tool is one of ${TOOLS.join(", ")}`);
  return tool as Tool;
}
export type Tool = (typeof TOOLS)[number];

const run = promisify(execFile);

const IDLE_MS = 10_000;

/** Zeroes a callgrind process's counters, runs `during`, dumps them: the instructions and the time it took. */
async function callgrindWindow(
  pid: number | undefined,
  dir: string,
  during: () => Promise<unknown>,
): Promise<{ instructions: number; ms: number }> {
  await run("callgrind_control", ["-z", String(pid)]);
  const start = performance.now();
  await during();
  const ms = performance.now() - start;
  await run("callgrind_control", ["-d", String(pid)]);
  // The newest dump: `callgrind.out.<pid>.<n>`, n counting up (the file without `.<n>` is the final one).
  const dumps = readdirSync(dir)
    .map((file) => /^callgrind\.out\.\d+\.(\d+)$/.exec(file))
    .filter((match) => match !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]));
  const last = dumps.at(-1)?.[0];
  const totals = /^(?:totals|summary): (\d+)/m.exec(readFileSync(join(dir, last ?? ""), "utf8"));
  return { instructions: Number(totals?.[1] ?? Number.NaN), ms };
}

/** How to start the measured process for `tool`, its output files in `dir`. */
export function toolWrapping(tool: Tool, dir: string): Wrapping {
  switch (tool) {
    case "callgrind":
      return {
        prefix: [
          "valgrind",
          "--tool=callgrind",
          "--smc-check=all-non-file",
          `--callgrind-out-file=${join(dir, "callgrind.out.%p")}`,
        ],
      };
    case "cpu-prof":
      return { nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--cpu-prof-interval=100"] };
    case "gc":
      // V8 prints GC traces with C stdio, fully buffered into a file: line-buffer it.
      return { prefix: ["stdbuf", "-oL"], nodeFlags: ["--trace-gc-nvp"] };
    case "syscalls":
      return {};
  }
}

/** A measured process, warmed up, and how to send it `n` requests. */
export interface CostTarget {
  readonly name: string;
  readonly child: import("node:child_process").ChildProcess;
  /** Its stdout and stderr (for `gc`). */
  readonly logFile: string;
  readonly dir: string;
  readonly requests: number;
  send(n: number): Promise<void>;
}

/** Measures `target` with `tool`; returns the lines to print. Stops the process for `cpu-prof`. */
export async function measureCost(tool: Tool, target: CostTarget): Promise<string[]> {
  const { name, child, dir, requests } = target;
  if (tool === "callgrind") {
    // A process also works while idle (timers, heartbeats, the event feed), and under valgrind a
    // request takes 50 times longer, so that work would be counted per request by how slow the
    // machine is. Measured first, idle, and taken off in proportion to the time the requests took.
    const idle = await callgrindWindow(
      child.pid,
      dir,
      () => new Promise((resolve) => setTimeout(resolve, IDLE_MS)),
    );
    const busy = await callgrindWindow(child.pid, dir, () => target.send(requests));
    const background = (idle.instructions / idle.ms) * busy.ms;
    const perRequest = (busy.instructions - background) / requests;
    return [
      `${name}: ${perRequest.toFixed(0)} instructions per request (callgrind, ${requests} requests in ${(busy.ms / 1000).toFixed(0)} s; ` +
        `${(busy.instructions / requests).toFixed(0)} before taking off ${(idle.instructions / idle.ms).toFixed(0)} idle instructions per ms)`,
    ];
  }
  if (tool === "syscalls") {
    const out = join(dir, "strace.txt");
    const strace = spawn("strace", ["-c", "-f", "-o", out, "-p", String(child.pid)], { stdio: "ignore" });
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // attached
    await target.send(requests);
    const exited = once(strace, "exit");
    strace.kill("SIGINT");
    await exited;
    const rows = [
      ...readFileSync(out, "utf8").matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/gm),
    ];
    const total = Number(rows.find((row) => row[2] === "total")?.[1] ?? Number.NaN);
    const top = rows
      .filter((row) => row[2] !== "total")
      .sort((a, b) => Number(b[1]) - Number(a[1]))
      .slice(0, 6)
      .map((row) => `${row[2]} ${(Number(row[1]) / requests).toFixed(2)}`);
    return [
      `${name}: ${(total / requests).toFixed(2)} system calls per request, all threads (strace -c -f, ${requests} requests): ${top.join(", ")}`,
    ];
  }
  if (tool === "gc") {
    const before = statSync(target.logFile).size;
    await target.send(requests);
    const after = statSync(target.logFile).size;
    const text = readFileSync(target.logFile).subarray(before, after).toString("utf8");
    let allocated = 0;
    let scavenges = 0;
    for (const match of text.matchAll(/"?gc"?[=:]"?(\w+)"?.*?"?allocated"?[=:](\d+)/g)) {
      allocated += Number(match[2]);
      if (match[1] === "s") scavenges += 1;
    }
    return [
      `${name}: ${(allocated / requests).toFixed(0)} bytes allocated per request (${scavenges} scavenges over ${requests} requests, --trace-gc-nvp)`,
    ];
  }
  const from = Number(process.hrtime.bigint() / 1000n);
  await target.send(requests);
  const to = Number(process.hrtime.bigint() / 1000n);
  await stopChild(child);
  const file = readdirSync(dir).find((entry) => entry.endsWith(".cpuprofile"));
  if (file === undefined) throw new Error(`${name}: no profile written in ${dir}`);
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile;
  return [`${name}: cpu profile ${join(dir, file)}`, ...summarizeProfile(profile, from, to, requests)];
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
