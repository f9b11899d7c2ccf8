import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TokenService, VerifyResult } from "@latchkey/proto";
import { generateToken } from "@latchkey/token";
import pg from "pg";
import { findFreePort } from "../harness/free-port.js";
import { createDatabase, startPostgres } from "../harness/postgres.js";
import { adminClients } from "./admin-client.js";
import { spawnService } from "./service-process.js";

// npm run bench:import -- --keys 1000000 [--table-keys 10000000] [--small-keys 10000] [--measured 2000]
//   [--import-concurrency N] (the command's --concurrency; its default, 4, when not given)
//
// 1. Import speed: `latchkey-token-service import` (the real command, its own
//    process) reads a JSON Lines file of --keys keys (--measured plaintext
//    Latchkey tokens, the rest SHA-256 only) and sends it to a token-service
//    (its own process, real PostgreSQL, the in-process event bus). Prints keys/s.
// 2. Verify database hits with a big table: a second token-service on a
//    second database holds --small-keys keys imported the same way. The first
//    database is then filled up to --table-keys rows with a direct
//    `INSERT … SELECT generate_series` (labelled: bulk rows, not imported
//    through the API). Both services run with the row cache off, so every
//    Verify reads PostgreSQL; the same --measured imported tokens are verified
//    on both, in interleaved rounds, and the p99s compared. Goal: ≤ 1.5×.

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive whole number`);
  return value;
}

const keyCount = flag("keys", 100_000);
const tableKeys = flag("table-keys", 10_000_000);
const smallKeys = flag("small-keys", 10_000);
const measured = Math.min(flag("measured", 2_000), keyCount, smallKeys);
const rounds = flag("rounds", 6);
const concurrency = flag("concurrency", 4);
// The import command's batches in flight (its --concurrency); its own default when not given.
const importConcurrency = process.argv.includes("--import-concurrency")
  ? flag("import-concurrency", 4)
  : undefined;
const BULK_CHUNK = 1_000_000;
// The deployment's formats: its own keys (the measured plaintexts) and seed 003's `oag_` + 32 hex,
// the format the hash-only rows are imported as.
const KEY_FORMATS = JSON.stringify([
  { name: "latchkey", kind: "latchkey", prefix: "lk" },
  { name: "oag", kind: "hex", prefix: "oag_", length: 32 },
]);
const MAIN = resolve("services/token-service/src/main.ts");

const log = (line: string) => process.stdout.write(`${line}\n`);
const load = () => loadavg()[0]?.toFixed(2) ?? "?";

/** Writes a JSON Lines import file: the measured plaintext tokens first, then SHA-256-only keys. */
async function writeImportFile(path: string, teamId: string, total: number, tokens: readonly string[]) {
  const out = createWriteStream(path);
  for (let i = 0; i < total; i++) {
    const secret =
      i < tokens.length
        ? { token: tokens[i] }
        : { tokenSha256: randomBytes(32).toString("hex"), format: "oag" };
    const line = `${JSON.stringify({ externalId: `ext-${i}`, teamId, name: `imported-${i}`, scopes: ["read"], ...secret })}\n`;
    if (!out.write(line)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}

/** Runs the import command on `path`; resolves with its summary line and the seconds it took. */
async function runImport(
  path: string,
  url: string,
  adminKey: string,
): Promise<{ summary: string; seconds: number }> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      "--conditions=@latchkey/source",
      "--import",
      "tsx",
      MAIN,
      "import",
      path,
      ...(importConcurrency === undefined ? [] : ["--concurrency", String(importConcurrency)]),
    ],
    {
      env: { ...process.env, LATCHKEY_ADMIN_KEY: adminKey, LATCHKEY_TOKEN_SERVICE_URL: url },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  const [code] = await once(child, "exit");
  if (code !== 0) throw new Error(`import exited with ${code}: ${stdout}`);
  return { summary: stdout.trim(), seconds: (performance.now() - started) / 1000 };
}

/** Verifies every token once, `concurrency` at a time; returns each call's latency in ms. */
async function verifyLatencies(url: string, tokens: readonly string[]): Promise<number[]> {
  const client = createClient(TokenService, createGrpcTransport({ baseUrl: url }));
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < tokens.length; i = next++) {
        const started = performance.now();
        const { result } = await client.verify({ token: tokens[i] ?? "" });
        latencies.push(performance.now() - started);
        if (result !== VerifyResult.VALID)
          throw new Error(`measured key ${i} answered ${VerifyResult[result]}`);
      }
    }),
  );
  return latencies;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const postgres = await startPostgres();
const work = mkdtempSync(join(tmpdir(), "latchkey-import-bench-"));
const rootKey = randomBytes(32).toString("base64url");
const stops: Array<() => Promise<void>> = [
  () => postgres.stop(),
  async () => rmSync(work, { recursive: true, force: true }),
];
try {
  const services: Record<"large" | "small", { url: string; databaseUrl: string; teamId: string }> =
    {} as never;
  for (const name of ["large", "small"] as const) {
    const databaseUrl = await createDatabase(postgres.url, `import_${name}`);
    const [port, grpcPort] = [await findFreePort(), await findFreePort()];
    const service = await spawnService(
      "services/token-service/src/main.ts",
      {
        LATCHKEY_LOG_LEVEL: "info",
        DATABASE_URL: databaseUrl,
        LATCHKEY_ROOT_KEY: rootKey,
        LATCHKEY_LISTEN: `127.0.0.1:${port}`,
        LATCHKEY_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
        // Every Verify reads PostgreSQL: the database hit is what is measured.
        LATCHKEY_VERIFY_CACHE_MAX_ENTRIES: "0",
        LATCHKEY_KEY_FORMATS: KEY_FORMATS,
      },
      /token-service ready/,
    );
    stops.unshift(() => service.stop());
    const url = `http://127.0.0.1:${grpcPort}`;
    const { team } = await adminClients(url, rootKey).teams.createTeam({ name: `bench-${name}` });
    services[name] = { url, databaseUrl, teamId: team?.id ?? "" };
  }
  const tokens = Array.from({ length: measured }, () => generateToken({ prefix: "lk", environment: "live" }));

  log(`import: writing ${keyCount} keys (${measured} plaintext, the rest SHA-256 only) as JSON Lines…`);
  const largeFile = join(work, "large.jsonl");
  await writeImportFile(largeFile, services.large.teamId, keyCount, tokens);
  const loadBefore = load();
  const big = await runImport(largeFile, services.large.url, rootKey);
  log(`import: ${big.summary}`);
  log(
    `import: ${keyCount} keys in ${big.seconds.toFixed(1)} s = ${Math.round(keyCount / big.seconds)} keys/s ` +
      `(load ${loadBefore} → ${load()})`,
  );

  const smallFile = join(work, "small.jsonl");
  await writeImportFile(smallFile, services.small.teamId, smallKeys, tokens);
  log(`verify: small table: ${(await runImport(smallFile, services.small.url, rootKey)).summary}`);

  const sql = new pg.Pool({ connectionString: services.large.databaseUrl, max: 1 });
  stops.unshift(() => sql.end());
  const have = Number((await sql.query("select count(*) as n from api_keys")).rows[0].n);
  const bulkStarted = performance.now();
  for (let from = have + 1; from <= tableKeys; from += BULK_CHUNK) {
    const to = Math.min(tableKeys, from + BULK_CHUNK - 1);
    // Bulk rows straight into PostgreSQL (not through ImportKeys): only their number matters here.
    await sql.query(
      `insert into api_keys (id, team_id, name, scopes, environment, token_hash, hint, created_by, format)
       select 'key_bulk' || lpad(g::text, 18, '0'), $1, 'bulk', '{read}', 'live',
              sha256(convert_to('bulk-' || g, 'UTF8')), '…', 'bench', 'oag'
       from generate_series($2::bigint, $3::bigint) g`,
      [services.large.teamId, from, to],
    );
    log(`verify: bulk rows (INSERT … SELECT generate_series) up to ${to} of ${tableKeys}`);
  }
  await sql.query("analyze api_keys");
  const rows = Number((await sql.query("select count(*) as n from api_keys")).rows[0].n);
  log(
    `verify: large table ${rows} keys (bulk insert ${((performance.now() - bulkStarted) / 1000).toFixed(0)} s)`,
  );

  // The import left one IMPORTED event per key in the outbox; measure once the publisher is done with them.
  const drainStarted = performance.now();
  for (;;) {
    const pending = Number(
      (await sql.query("select count(*) as n from key_event_outbox where published_at is null")).rows[0].n,
    );
    if (pending === 0) break;
    log(`verify: waiting for the outbox to publish ${pending} IMPORTED events…`);
    await new Promise((done) => setTimeout(done, 5_000));
  }
  log(`verify: outbox drained (waited ${((performance.now() - drainStarted) / 1000).toFixed(0)} s)`);

  const samples: Record<"large" | "small", number[]> = { large: [], small: [] };
  // Warm both the same way: one pass each, not counted.
  for (const name of ["small", "large"] as const) await verifyLatencies(services[name].url, tokens);
  const loadVerify = load();
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (["small", "large"] as const) : (["large", "small"] as const);
    for (const name of order) {
      const latencies = await verifyLatencies(services[name].url, tokens);
      samples[name].push(...latencies);
      log(
        `verify: round ${round + 1} ${name}: p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms`,
      );
    }
  }
  const p99Small = percentile(samples.small, 99);
  const p99Large = percentile(samples.large, 99);
  log(
    `verify (database hit, ${concurrency} in flight, ${samples.small.length} calls each): ` +
      `p99 ${smallKeys} keys ${p99Small.toFixed(2)} ms, ${rows} keys ${p99Large.toFixed(2)} ms = ` +
      `${(p99Large / p99Small).toFixed(2)}× (goal ≤ 1.5×); p50 ${percentile(samples.small, 50).toFixed(2)} / ` +
      `${percentile(samples.large, 50).toFixed(2)} ms (load ${loadVerify} → ${load()})`,
  );
} finally {
  for (const stop of stops) await stop().catch(() => {});
}
