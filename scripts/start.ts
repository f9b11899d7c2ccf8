import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createMemoryKeyEventBus, type KeyEventBus } from "@latchkey/events";
import { loadSidecarConfig, startSidecar } from "@latchkey/sidecar";
import { startTracing } from "@latchkey/telemetry";
import { loadTokenServiceConfig, startTokenService } from "@latchkey/token-service";
import { startDemoApp } from "../services/sidecar/demo/demo-app.js";
import { keychainWalk } from "./keychain-walk.js";

// `npm start`: the whole stack in one process with nothing to install: the
// token-service on embedded PostgreSQL (PGlite, data in LATCHKEY_DATA_DIR) and
// an in-process event bus, a demo app on 3000, and the sidecar in front of it
// on 8080 with services/sidecar/examples/policy.yaml. With DATABASE_URL and NATS_URL set, the
// same code uses real PostgreSQL and NATS.

const started = performance.now();
const env: NodeJS.ProcessEnv = {
  LATCHKEY_LISTEN: "127.0.0.1:8081",
  LATCHKEY_GRPC_LISTEN: "127.0.0.1:8082",
  LATCHKEY_SIDECAR_LISTEN: "127.0.0.1:8080",
  LATCHKEY_SIDECAR_ADMIN_LISTEN: "127.0.0.1:9090",
  LATCHKEY_UPSTREAM: "http://127.0.0.1:3000",
  LATCHKEY_POLICY: "services/sidecar/examples/policy.yaml",
  LATCHKEY_LOG_LEVEL: "warn",
  CRON_SECRET: randomBytes(24).toString("base64url"),
  ...process.env,
};
// Keychains need a master key. Unless one is configured, a development key is kept beside the
// embedded database (generated once), so stored secrets survive restarts of `npm start`.
if (env.LATCHKEY_KEYCHAIN_MASTER_KEY === undefined && env.LATCHKEY_KEYCHAIN_MASTER_KEY_FILE === undefined) {
  const dataDir = env.LATCHKEY_DATA_DIR ?? "./.latchkey";
  const file = join(dataDir, "keychain-master.key");
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(
      file,
      `# npm start's development master key (not for production)\ndev-1:${randomBytes(32).toString("base64")}\n`,
      {
        mode: 0o600,
      },
    );
  }
  env.LATCHKEY_KEYCHAIN_MASTER_KEY_FILE = file;
}
const tokenConfig = loadTokenServiceConfig(env);
const sidecarConfig = loadSidecarConfig(env);

// One process, one tracer provider: both parts export as `latchkey` unless OTEL_SERVICE_NAME says otherwise.
const tracing = await startTracing({ serviceName: "latchkey" });
const bus: KeyEventBus | undefined = tokenConfig.natsUrl ? undefined : createMemoryKeyEventBus();
const service = await startTokenService(tokenConfig, bus ? { bus } : {});
const demo = await startDemoApp({
  host: "127.0.0.1",
  port: Number(new URL(sidecarConfig.upstream).port || 80),
});
const grpcUrl = `http://127.0.0.1:${service.grpcPort}`;
// Built as in production (its own verifier, whose series /metrics shows), on the in-process bus
// when there is no NATS.
const sidecar = await startSidecar(
  {
    ...sidecarConfig,
    tokenServiceUrl: new URL(grpcUrl),
    natsUrl: sidecarConfig.natsUrl ?? tokenConfig.natsUrl,
  },
  { ...(bus ? { events: bus } : {}), env },
);

const root = service.generatedRootKey ?? (process.env.LATCHKEY_ROOT_KEY ? "$LATCHKEY_ROOT_KEY" : undefined);
const rootLine =
  service.generatedRootKey !== undefined
    ? `Root key (generated now, shown once; only its hash is stored):\n\n  ${service.generatedRootKey}\n`
    : root
      ? "Root key: the value of LATCHKEY_ROOT_KEY.\n"
      : `Root key: generated and printed on the first start of ${tokenConfig.dataDir}; start over with\n` +
        `  rm -rf ${tokenConfig.dataDir}   or set LATCHKEY_ROOT_KEY.\n`;
const ROOT = root ?? "<root key>";
const consoleUrl = `http://127.0.0.1:${service.port}/console/`;
const consoleLine =
  service.console === "served"
    ? `Admin console: ${consoleUrl}  (open it and sign in with the root key)`
    : service.console === "not-built"
      ? `Admin console: not built; run \`npm run build\`, then restart (${consoleUrl} says the same)`
      : "Admin console: off (LATCHKEY_CONSOLE_ENABLED=false)";
const buf = `npx buf curl --protocol grpc --http2-prior-knowledge`;
const api = `http://127.0.0.1:${service.grpcPort}/latchkey.v1`;
process.stdout.write(`
Latchkey is up in ${((performance.now() - started) / 1000).toFixed(1)} s
  token-service  Connect/gRPC-Web http://127.0.0.1:${service.port}  native gRPC ${grpcUrl}  (${service.database.kind}, ${bus ? "in-process bus" : "NATS"})
  sidecar        http://127.0.0.1:${sidecar.port}  ->  demo app http://127.0.0.1:${demo.port}   (policy ${sidecarConfig.policy ?? "all-private"})
  metrics        http://127.0.0.1:${sidecar.adminPort}/metrics

${rootLine}
${consoleLine}

Try it (paste in another terminal):

  export ROOT='${ROOT}'
  ${buf} -H "Authorization: Bearer $ROOT" -d '{"name":"payments"}' ${api}.TeamService/CreateTeam
  ${buf} -H "Authorization: Bearer $ROOT" -d '{"teamId":"<team id>","name":"prod-worker","scopes":["write"]}' ${api}.TokenService/Issue
  export KEY='<token from Issue>'
  ${buf} -d "{\\"token\\":\\"$KEY\\"}" ${api}.TokenService/Verify
  curl -H 'content-type: application/json' -d "{\\"token\\":\\"$KEY\\"}" http://127.0.0.1:${service.port}/latchkey.v1.TokenService/Verify   # plain curl, HTTP/1.1 + JSON

  curl -i http://127.0.0.1:${sidecar.port}/hello                                    # public (GET)
  curl -i -X POST http://127.0.0.1:${sidecar.port}/orders                           # 401: needs a key
  curl -i -X POST -H "Authorization: Bearer $KEY" http://127.0.0.1:${sidecar.port}/orders
  curl -N "http://127.0.0.1:${sidecar.port}/events?token=$KEY"                      # SSE; ends when the key is revoked

  # what the sidecar counted for the key, per minute (a second after the requests)
  ${buf} -H "Authorization: Bearer $ROOT" -d "{\\"keyId\\":\\"<key id>\\",\\"startTime\\":\\"$(date -u -d '-1 hour' +%FT%TZ)\\",\\"granularity\\":\\"USAGE_GRANULARITY_MINUTE\\"}" ${api}.TokenService/GetUsage

  ${buf} -H "Authorization: Bearer $ROOT" -d '{"keyId":"<key id>","waitTimeout":"2s"}' ${api}.TokenService/Revoke

Keychains (seed 002): a keychain, a third-party secret, the example package, a grant pinned to its
digest, then ResolveSecrets as the package's runtime calls it (see the README's keychain section):

${keychainWalk({ buf, api })
  .map((line) => `  ${line}`)
  .join("\n")}

Ctrl-C stops everything.
`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, async () => {
    if (stopping) return;
    stopping = true;
    await sidecar.close();
    await demo.close();
    await service.close();
    await tracing.shutdown();
    process.exit(0);
  });
}
