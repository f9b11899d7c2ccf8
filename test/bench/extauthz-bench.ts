import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { toBinary } from "@bufbuild/protobuf";
import { CheckRequestSchema } from "@latchkey/proto/envoy";
import { findFreePort } from "../harness/free-port.js";
import { startNats } from "../harness/nats.js";
import { startPostgres } from "../harness/postgres.js";
import { envoyCheckRequest, extAuthzClient, outcomeOf } from "../sidecar/ext-authz-client.js";
import { adminClients } from "./admin-client.js";
import { h2loadGrpc, writeGrpcFrame } from "./h2load.js";
import { spawnService } from "./service-process.js";
import { startChild, stopChild, waitForStatus } from "./sidecar-stack.js";

// npm run bench:extauthz [-- --rounds 3 --requests 40000 --streams 64]
// Envoy ext_authz Check throughput of the sidecar on a cached key (policy, credential, verifier
// cache hit, rate-limit step, identity headers, access log at info), against a trivial grpc-js
// Check handler (the yardstick) in the same run. The sidecar runs built (`npm run build` first) and
// logs to a file, as bench:sidecar's does. h2load in its own process, one connection (as Envoy's
// ext_authz cluster keeps), `streams` concurrent streams, one CheckRequest shaped as Envoy sends it. A warm-up run per target first; then each target runs `rounds` times, interleaved; the
// median is reported.

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    requests: { type: "string", default: "40000" },
    streams: { type: "string", default: "64" },
  },
});
const [rounds, requests, streams] = [values.rounds, values.requests, values.streams].map((value) => {
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) throw new Error(`not a positive whole number: ${value}`);
  return number;
}) as [number, number, number];

const postgres = await startPostgres();
const nats = await startNats();
const rootKey = randomBytes(32).toString("base64url");
const dir = mkdtempSync(join(tmpdir(), "latchkey-extauthz-bench-"));
const stops: Array<() => Promise<void>> = [() => postgres.stop(), () => nats.dispose()];
try {
  const [httpPort, grpcPort, trivialPort] = [
    await findFreePort(),
    await findFreePort(),
    await findFreePort(),
  ];
  const tokenService = await spawnService(
    "services/token-service/src/main.ts",
    {
      LATCHKEY_LOG_LEVEL: "info",
      DATABASE_URL: postgres.url,
      NATS_URL: nats.url,
      LATCHKEY_ROOT_KEY: rootKey,
      LATCHKEY_LISTEN: `127.0.0.1:${httpPort}`,
      LATCHKEY_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
    },
    /token-service ready/,
  );
  stops.unshift(() => tokenService.stop());
  // The built sidecar, as deployed, its output (the access log at info) into a file: a pipe into this
  // process would cost this process CPU per request, on the same two cores as the sidecar and h2load.
  const [extAuthzPort, adminPort, proxyPort] = [
    await findFreePort(),
    await findFreePort(),
    await findFreePort(),
  ];
  const sidecarLog = join(dir, "sidecar.log");
  const sidecarProcess = startChild(
    process.execPath,
    ["services/sidecar/bin/latchkey-sidecar.js"],
    {
      LATCHKEY_UPSTREAM: "http://127.0.0.1:9",
      LATCHKEY_SIDECAR_LISTEN: `127.0.0.1:${proxyPort}`,
      LATCHKEY_SIDECAR_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      LATCHKEY_SIDECAR_EXTAUTHZ_LISTEN: `127.0.0.1:${extAuthzPort}`,
      LATCHKEY_TOKEN_SERVICE_URL: `http://127.0.0.1:${grpcPort}`,
      NATS_URL: nats.url,
      LATCHKEY_LOG_LEVEL: "info",
    },
    sidecarLog,
  );
  stops.unshift(() => stopChild(sidecarProcess));
  await waitForStatus(`http://127.0.0.1:${adminPort}/readyz`, 200, sidecarProcess, sidecarLog);
  const trivial = await spawnService(
    "test/bench/trivial-grpc-server.ts",
    { PORT: String(trivialPort) },
    /listening/,
  );
  stops.unshift(() => trivial.stop());

  const { teams, tokens } = adminClients(`http://127.0.0.1:${grpcPort}`, rootKey);
  const { team } = await teams.createTeam({ name: "bench" });
  const { token } = await tokens.issue({ teamId: team?.id ?? "", name: "bench", scopes: ["read"] });
  const check = envoyCheckRequest({
    path: "/api/items?page=2",
    rawHeaders: true,
    headers: [
      ["authorization", `Bearer ${token}`],
      ["user-agent", "bench/1.0"],
      ["accept", "application/json"],
      ["accept-encoding", "gzip, br"],
      ["x-forwarded-for", "203.0.113.7"],
      ["x-request-id", "2f8e6c1a-0d4b-4a52-9a8c-5b1f7e3d9c20"],
      ["x-envoy-expected-rq-timeout-ms", "15000"],
    ],
  });
  const first = outcomeOf(await extAuthzClient(extAuthzPort).check(check));
  if (!first.allowed) throw new Error(`setup: the sidecar refused the bench key (${first.status})`);
  const dataFile = join(dir, "check.grpc");
  writeGrpcFrame(dataFile, toBinary(CheckRequestSchema, check));

  const targets = [
    { name: "trivial grpc-js Check handler", port: trivialPort },
    { name: "sidecar Check, cached key", port: extAuthzPort },
  ];
  const load = async (port: number, n: number) => {
    const result = await h2loadGrpc({
      url: `http://127.0.0.1:${port}/envoy.service.auth.v3.Authorization/Check`,
      dataFile,
      requests: n,
      connections: 1,
      streams,
    });
    if (result.failed > 0) throw new Error(`h2load on ${port}: ${result.failed} requests failed`);
    return result.requestsPerSecond;
  };
  // Warm-up, not counted: both processes compile their hot paths first.
  for (const target of targets) await load(target.port, Math.min(requests, 10_000));
  const results = targets.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    for (const [index, target] of targets.entries()) results[index]?.push(await load(target.port, requests));
  }
  const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? 0;
  const [trivialRps = 1, checkRps = 0] = results.map(median);
  console.log(`\nEnvoy ext_authz Check over gRPC, 1 connection × ${streams} streams, median of ${rounds}`);
  console.log("| target | req/s | vs trivial |");
  console.log("|---|---|---|");
  for (const [index, target] of targets.entries()) {
    const rps = median(results[index] ?? []);
    console.log(`| ${target.name} | ${rps.toFixed(0)} | ${(rps / trivialRps).toFixed(2)} |`);
  }
  console.log(
    `extauthz trivial_rps=${trivialRps.toFixed(0)} check_rps=${checkRps.toFixed(0)} ratio=${(checkRps / trivialRps).toFixed(2)}`,
  );
} finally {
  for (const stop of stops) await stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
