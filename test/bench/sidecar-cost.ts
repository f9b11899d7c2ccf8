import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { count, measureCost, option, toolOption, toolWrapping } from "./cost-tools.js";
import { h2loadHttp1 } from "./h2load.js";
import { startStack } from "./sidecar-stack.js";

// npm run bench:sidecar-cost [-- --tool callgrind|cpu-prof|gc|syscalls --target sidecar|bare|both
//                               --requests N --warmup N --access-log on|off]
//
// What one request costs the sidecar (cached key, access log on unless --access-log off) and the bare
// undici proxy, measured in ways that hold up on a busy machine, where req/s ratios do not: the tools
// are described in cost-tools.ts. Callgrind is slow (about 5 minutes a target): its defaults are 6,000
// warm-up requests and 4,000 measured.
// Requests come from h2load (HTTP/1.1, 16 keep-alive connections) in its own process.

const tool = toolOption();
const accessLog = option("access-log", "on");
if (!["on", "off"].includes(accessLog)) throw new Error("--access-log is on or off");
const targetOption = option("target", "both");
if (!["sidecar", "bare", "both"].includes(targetOption)) throw new Error("--target is sidecar, bare or both");
const slow = tool === "callgrind";
const requests = count(
  "requests",
  slow ? 4_000 : tool === "gc" ? 200_000 : tool === "syscalls" ? 20_000 : 40_000,
);
const warmup = count("warmup", slow ? 6_000 : 20_000);

function h2load(url: string, n: number, token: string, warmingUp = false): Promise<void> {
  // Under valgrind the first lookups can outlast the verifier's deadline (503): tolerated in the warm-up.
  return h2loadHttp1({ url, requests: n, connections: 16, authorization: `Bearer ${token}`, warmingUp });
}

async function measure(target: "sidecar" | "bare"): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), `latchkey-cost-${target}-`));
  const wrapping = toolWrapping(tool, dir);
  const stack = await startStack({
    dir,
    sidecarEnv: {
      ...(accessLog === "off" ? { LATCHKEY_LOG_LEVEL: "warn" } : {}),
      // Under valgrind the event feed's heartbeats can fall behind the default 2 s, and a cached key
      // would then be re-verified (a miss, not the path measured): vouch for cached answers longer.
      ...(tool === "callgrind" ? { LATCHKEY_MAX_STALE_MS: "60000" } : {}),
    },
    ...(target === "sidecar" ? { sidecar: wrapping } : { bareProxy: wrapping }),
    startTimeoutMs: 300_000,
  });
  try {
    const url = `http://127.0.0.1:${target === "sidecar" ? stack.sidecarPort : stack.bareProxyPort}/`;
    await h2load(url, warmup, stack.token, true);
    return await measureCost(tool, {
      name: target === "sidecar" ? `sidecar (access log ${accessLog})` : "bare undici proxy",
      child: target === "sidecar" ? stack.sidecar : stack.bareProxy,
      logFile: join(dir, target === "sidecar" ? "sidecar.log" : "bare-proxy.log"),
      dir,
      requests,
      send: (n) => h2load(url, n, stack.token),
    });
  } finally {
    await stack.stop();
    if (tool === "gc" || tool === "syscalls") rmSync(dir, { recursive: true, force: true });
  }
}

const targets =
  targetOption === "both" ? (["bare", "sidecar"] as const) : [targetOption as "bare" | "sidecar"];
for (const target of targets) {
  for (const line of await measure(target)) console.log(line);
}
