import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { VerifyRequestSchema } from "@latchkey/proto";
import { findFreePort } from "../harness/free-port.js";
import { startPostgres } from "../harness/postgres.js";
import { adminClients } from "./admin-client.js";
import { count, measureCost, option, toolOption, toolWrapping } from "./cost-tools.js";
import { h2loadGrpc, writeGrpcFrame } from "./h2load.js";
import { startChild, stopChild } from "./sidecar-stack.js";

// npm run bench:verify-cost [-- --tool callgrind|cpu-prof|gc|syscalls --target verify|trivial|both
//                               --requests N --warmup N]
//
// What one cached Verify costs the token-service over native gRPC, beside what one call costs the
// trivial grpc-js handler (bench:verify's yardstick), measured with the tools of cost-tools.ts, which
// hold up on a busy machine. h2load sends the calls: one connection, 64 concurrent streams, one token
// (the row cache answers).

const tool = toolOption();
const targetOption = option("target", "both");
if (!["verify", "trivial", "both"].includes(targetOption))
  throw new Error("--target is verify, trivial or both");
const slow = tool === "callgrind";
const requests = count("requests", slow ? 5_000 : tool === "gc" ? 200_000 : 60_000);
const warmup = count("warmup", slow ? 10_000 : 30_000);
const TSX = ["--conditions=@latchkey/source", "--import", "tsx"];
const TRIVIAL = fileURLToPath(new URL("./trivial-grpc-server.ts", import.meta.url));

async function waitForLine(logFile: string, pattern: RegExp, child: { exitCode: number | null }) {
  for (let attempt = 0; attempt < 6_000; attempt++) {
    const text = readFileSync(logFile, "utf8");
    if (pattern.test(text)) return;
    if (child.exitCode !== null) throw new Error(`exited before it was ready:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`not ready:\n${readFileSync(logFile, "utf8")}`);
}

async function measure(target: "verify" | "trivial"): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), `latchkey-verify-cost-${target}-`));
  const wrapping = toolWrapping(tool, dir);
  const stops: Array<() => Promise<void>> = [];
  try {
    const postgres = await startPostgres();
    stops.unshift(() => postgres.stop());
    const rootKey = randomBytes(32).toString("base64url");
    const port = await findFreePort();
    const httpPort = await findFreePort();
    const script = target === "verify" ? [...TSX, "services/token-service/src/main.ts"] : [...TSX, TRIVIAL];
    const node = [...(wrapping.nodeFlags ?? []), ...script];
    const prefix = wrapping.prefix ?? [];
    const logFile = join(dir, `${target}.log`);
    const child = startChild(
      prefix[0] ?? process.execPath,
      prefix.length > 0 ? [...prefix.slice(1), process.execPath, ...node] : node,
      target === "verify"
        ? {
            LATCHKEY_LOG_LEVEL: "info",
            DATABASE_URL: postgres.url,
            LATCHKEY_ROOT_KEY: rootKey,
            LATCHKEY_LAST_USED_FLUSH_MS: "1000",
            LATCHKEY_LISTEN: `127.0.0.1:${httpPort}`,
            LATCHKEY_GRPC_LISTEN: `127.0.0.1:${port}`,
          }
        : { PORT: String(port) },
      logFile,
    );
    stops.unshift(() => stopChild(child));
    await waitForLine(logFile, target === "verify" ? /token-service ready/ : /listening/, child);
    let token = "lk_live_0000000000000000000000000000000000000000000000000";
    if (target === "verify") {
      const { teams, tokens } = adminClients(`http://127.0.0.1:${port}`, rootKey);
      const { team } = await teams.createTeam({ name: "bench" });
      ({ token } = await tokens.issue({ teamId: team?.id ?? "", name: "bench", scopes: ["write"] }));
    }
    const dataFile = join(dir, "verify.grpc");
    writeGrpcFrame(dataFile, toBinary(VerifyRequestSchema, create(VerifyRequestSchema, { token })));
    const send = async (n: number, warmingUp = false) => {
      const result = await h2loadGrpc({
        url: `http://127.0.0.1:${port}/latchkey.v1.TokenService/Verify`,
        dataFile,
        requests: n,
        connections: 1,
        streams: 64,
      });
      // Under valgrind, calls can fail in the warm-up (the server is 50 times slower than usual).
      if (result.failed > 0 && !warmingUp) throw new Error(`${target}: ${result.failed} calls failed`);
    };
    await send(warmup, true);
    return await measureCost(tool, {
      name: target === "verify" ? "Verify, cached key" : "trivial grpc-js handler",
      child,
      logFile,
      dir,
      requests,
      send,
    });
  } finally {
    for (const stop of stops) await stop().catch(() => {});
    if (tool === "gc" || tool === "syscalls") rmSync(dir, { recursive: true, force: true });
  }
}

const targets =
  targetOption === "both" ? (["trivial", "verify"] as const) : [targetOption as "verify" | "trivial"];
for (const target of targets) {
  for (const line of await measure(target)) console.log(line);
}
