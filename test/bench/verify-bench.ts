import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TokenService, VerifyRequestSchema, VerifyResult } from "@latchkey/proto";
import { findFreePort } from "../harness/free-port.js";
import { startPostgres } from "../harness/postgres.js";
import { adminClients } from "./admin-client.js";
import { h2loadGrpc, writeGrpcFrame } from "./h2load.js";
import { spawnService } from "./service-process.js";

// npm run bench:verify [-- --rounds 3 --requests 40000 --db-requests 10000 --streams 64]
// Verify throughput over native gRPC, h2load with one connection and 64
// concurrent streams, for: a trivial grpc-js handler (the yardstick), a cached
// key, and a key read from PostgreSQL on every call (row cache off). Each
// target is measured `rounds` times, interleaved; the median is reported.

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
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

const postgres = await startPostgres();
const rootKey = randomBytes(32).toString("base64url");
const stops: Array<() => Promise<void>> = [() => postgres.stop()];
try {
  const [cachedPort, cachedGrpc, dbPort, dbGrpc, trivialPort] = await Promise.all(
    Array.from({ length: 5 }, () => findFreePort()),
  );
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
  for (const port of [cachedGrpc, dbGrpc]) {
    const client = createClient(TokenService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const answer = await client.verify({ token });
    if (answer.result !== VerifyResult.VALID)
      throw new Error(`setup: Verify on ${port} answered ${answer.result}`);
  }
  const dataFile = join(mkdtempSync(join(tmpdir(), "latchkey-bench-")), "verify.grpc");
  writeGrpcFrame(dataFile, toBinary(VerifyRequestSchema, create(VerifyRequestSchema, { token })));

  const targets = [
    { name: "trivial grpc-js handler", port: trivialPort, n: requests },
    { name: "Verify, cached key", port: cachedGrpc, n: requests },
    { name: "Verify, database hit", port: dbGrpc, n: dbRequests },
  ];
  const results = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const target of targets) {
      const url = `http://127.0.0.1:${target.port}/latchkey.v1.TokenService/Verify`;
      const result = await h2loadGrpc({ url, dataFile, requests: target.n, connections: 1, streams });
      if (result.failed > 0) throw new Error(`${target.name}: ${result.failed} requests failed`);
      results.get(target.name)?.push(result.requestsPerSecond);
    }
  }
  const [trivialRps, cachedRps, dbRps] = targets.map((t) => median(results.get(t.name) ?? []));
  console.log(`\nVerify over native gRPC, h2load 1 connection x ${streams} streams, median of ${rounds}`);
  console.log("| target | req/s | vs trivial |");
  console.log("|---|---|---|");
  for (const target of targets) {
    const rps = median(results.get(target.name) ?? []);
    console.log(`| ${target.name} | ${rps.toFixed(0)} | ${(rps / (trivialRps ?? 1)).toFixed(2)} |`);
  }
  console.log(
    `verify trivial_rps=${trivialRps?.toFixed(0)} cached_rps=${cachedRps?.toFixed(0)} db_rps=${dbRps?.toFixed(0)} ` +
      `ratio_cached=${((cachedRps ?? 0) / (trivialRps ?? 1)).toFixed(2)} ratio_db=${((dbRps ?? 0) / (trivialRps ?? 1)).toFixed(2)}`,
  );
} finally {
  for (const stop of stops) await stop().catch(() => {});
}
