import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TokenService, VerifyRequestSchema, VerifyResult } from "@latchkey/proto";
import { findFreePort } from "../harness/free-port.js";
import { startPostgres } from "../harness/postgres.js";
import { adminClients } from "./admin-client.js";
import { h2loadGrpc, writeGrpcFrame } from "./h2load.js";
import { spawnService } from "./service-process.js";

// npm run bench:verify [-- --rounds 3 --requests 40000 --db-requests 10000 --streams 64 --keys 500]
// Verify throughput over native gRPC with 64 concurrent streams, against a
// trivial grpc-js handler (the yardstick) in the same run:
// - cached key: h2load, one connection, one token (the row cache answers);
// - database hit: row cache off and `--keys` distinct tokens in turn, so every
//   call reads PostgreSQL (h2load can only repeat one body, and one token would
//   be coalesced by single-flight), sent by a grpc-js client process; the
//   trivial handler is measured with the same client for the ratio.
// Each target runs `rounds` times, interleaved; the median is reported.

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

const rounds = flag("rounds", 3);
const requests = flag("requests", 40_000);
const dbRequests = flag("db-requests", 10_000);
const streams = flag("streams", 64);
const keyCount = flag("keys", 500);
const run = promisify(execFile);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function h2loadVerify(port: number, dataFile: string, n: number): Promise<number> {
  const url = `http://127.0.0.1:${port}/latchkey.v1.TokenService/Verify`;
  const result = await h2loadGrpc({ url, dataFile, requests: n, connections: 1, streams });
  if (result.failed > 0) throw new Error(`h2load on ${port}: ${result.failed} requests failed`);
  return result.requestsPerSecond;
}

async function grpcLoad(port: number, bodiesFile: string, n: number): Promise<number> {
  const entry = fileURLToPath(new URL("./grpc-load.ts", import.meta.url));
  const args = [
    "--conditions=@latchkey/source",
    "--import",
    "tsx",
    entry,
    `127.0.0.1:${port}`,
    "/latchkey.v1.TokenService/Verify",
    bodiesFile,
  ];
  const { stdout } = await run(process.execPath, [...args, String(streams), String(n)]);
  const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { rps: number; failed: number };
  if (result.failed > 0) throw new Error(`grpc-load on ${port}: ${result.failed} requests failed`);
  return result.rps;
}

function writeLengthPrefixed(path: string, messages: Uint8Array[]): void {
  const parts: Buffer[] = [];
  for (const message of messages) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(message.length);
    parts.push(length, Buffer.from(message));
  }
  writeFileSync(path, Buffer.concat(parts));
}

const postgres = await startPostgres();
const rootKey = randomBytes(32).toString("base64url");
const stops: Array<() => Promise<void>> = [() => postgres.stop()];
try {
  const cachedPort = await findFreePort();
  const cachedGrpc = await findFreePort();
  const dbPort = await findFreePort();
  const dbGrpc = await findFreePort();
  const trivialPort = await findFreePort();
  const common = {
    LATCHKEY_LOG_LEVEL: "info",
    DATABASE_URL: postgres.url,
    LATCHKEY_ROOT_KEY: rootKey,
    LATCHKEY_LAST_USED_FLUSH_MS: "1000",
  };
  const cached = await spawnService(
    "services/token-service/src/main.ts",
    {
      ...common,
      LATCHKEY_LISTEN: `127.0.0.1:${cachedPort}`,
      LATCHKEY_GRPC_LISTEN: `127.0.0.1:${cachedGrpc}`,
    },
    /token-service ready/,
  );
  stops.unshift(() => cached.stop());
  const uncached = await spawnService(
    "services/token-service/src/main.ts",
    {
      ...common,
      LATCHKEY_LISTEN: `127.0.0.1:${dbPort}`,
      LATCHKEY_GRPC_LISTEN: `127.0.0.1:${dbGrpc}`,
      LATCHKEY_VERIFY_CACHE_MAX_ENTRIES: "0",
    },
    /token-service ready/,
  );
  stops.unshift(() => uncached.stop());
  const trivial = await spawnService(
    "test/bench/trivial-grpc-server.ts",
    { PORT: String(trivialPort) },
    /listening/,
  );
  stops.unshift(() => trivial.stop());

  const { teams, tokens } = adminClients(`http://127.0.0.1:${cachedGrpc}`, rootKey);
  const { team } = await teams.createTeam({ name: "bench" });
  const { token } = await tokens.issue({ teamId: team?.id ?? "", name: "bench", scopes: ["write"] });
  const manyTokens: string[] = [];
  for (let i = 0; i < keyCount; i++) {
    manyTokens.push(
      (await tokens.issue({ teamId: team?.id ?? "", name: `bench-${i}`, scopes: ["read"] })).token,
    );
  }
  for (const port of [cachedGrpc, dbGrpc]) {
    const client = createClient(TokenService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const answer = await client.verify({ token });
    if (answer.result !== VerifyResult.VALID)
      throw new Error(`setup: Verify on ${port} answered ${answer.result}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "latchkey-bench-"));
  const dataFile = join(dir, "verify.grpc");
  writeGrpcFrame(dataFile, toBinary(VerifyRequestSchema, create(VerifyRequestSchema, { token })));
  const bodiesFile = join(dir, "verify-many.bin");
  writeLengthPrefixed(
    bodiesFile,
    manyTokens.map((t) => toBinary(VerifyRequestSchema, create(VerifyRequestSchema, { token: t }))),
  );

  type Target = { name: string; port: number; n: number; client: "h2load" | "grpc-js" };
  const targets: Target[] = [
    { name: "trivial grpc-js handler (h2load)", port: trivialPort, n: requests, client: "h2load" },
    { name: "Verify, cached key (h2load)", port: cachedGrpc, n: requests, client: "h2load" },
    { name: "trivial grpc-js handler (grpc-js client)", port: trivialPort, n: dbRequests, client: "grpc-js" },
    {
      name: `Verify, database hit, ${keyCount} keys (grpc-js client)`,
      port: dbGrpc,
      n: dbRequests,
      client: "grpc-js",
    },
  ];
  const results = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const target of targets) {
      const rps =
        target.client === "h2load"
          ? await h2loadVerify(target.port, dataFile, target.n)
          : await grpcLoad(target.port, bodiesFile, target.n);
      results.get(target.name)?.push(rps);
    }
  }
  const [trivialRps = 1, cachedRps = 0, trivialNodeRps = 1, dbRps = 0] = targets.map((t) =>
    median(results.get(t.name) ?? []),
  );
  console.log(`\nVerify over native gRPC, ${streams} concurrent streams, median of ${rounds}`);
  console.log("| target | req/s | vs trivial, same client |");
  console.log("|---|---|---|");
  for (const [index, target] of targets.entries()) {
    const rps = median(results.get(target.name) ?? []);
    const base = index < 2 ? trivialRps : trivialNodeRps;
    console.log(`| ${target.name} | ${rps.toFixed(0)} | ${(rps / base).toFixed(2)} |`);
  }
  console.log(
    `verify trivial_rps=${trivialRps.toFixed(0)} cached_rps=${cachedRps.toFixed(0)} db_rps=${dbRps.toFixed(0)} ` +
      `ratio_cached=${(cachedRps / trivialRps).toFixed(2)} ratio_db=${(dbRps / trivialNodeRps).toFixed(2)}`,
  );
} finally {
  for (const stop of stops) await stop().catch(() => {});
}
