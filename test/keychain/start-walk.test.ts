// The keychain walk `npm start` prints (scripts/keychain-walk.ts), run line by line in a shell
// against the service as `npm start` runs it: embedded PostgreSQL (PGlite) in a folder, the
// in-process bus, the master key in a key file. Placeholders are filled from earlier answers, as
// a reader pastes them.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { TeamService } from "@latchkey/proto";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keychainWalk } from "../../scripts/keychain-walk.js";
import { loadTokenServiceConfig } from "../../services/token-service/src/config.js";
import {
  startTokenService,
  type TokenServiceHandle,
} from "../../services/token-service/src/token-service.js";
import { masterKey } from "../token-service/keychain-fixtures.js";
import { ROOT_KEY } from "../token-service/start.js";

const sh = promisify(execFile);
const BUF = `${resolve("node_modules/.bin/buf")} curl --protocol grpc --http2-prior-knowledge`;

let dataDir: string;
let service: TokenServiceHandle;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "latchkey-walk-"));
  const keyFile = join(dataDir, "keychain-master.key");
  await writeFile(keyFile, `# as npm start writes it\n${masterKey("dev-1")}\n`, { mode: 0o600 });
  const config = loadTokenServiceConfig({
    LATCHKEY_LISTEN: "127.0.0.1:0",
    LATCHKEY_GRPC_LISTEN: "127.0.0.1:0",
    LATCHKEY_DATA_DIR: join(dataDir, "db"),
    LATCHKEY_ROOT_KEY: ROOT_KEY,
    LATCHKEY_LOG_LEVEL: "silent",
    LATCHKEY_KEYCHAIN_MASTER_KEY_FILE: keyFile,
  });
  service = await startTokenService(config, { logger: pino({ level: "silent" }) });
}, 120_000);

afterAll(async () => {
  await service?.close();
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
});

// Eight shell lines, two of them `npm run keychain` (npm, then a tsx process: 10–20 s each on a busy
// two-core machine).
describe("npm start's keychain walk", { timeout: 300_000 }, () => {
  it("works as printed: the secret resolves for the pinned digest and is refused for another", async () => {
    expect(service.database.kind).toBe("pglite");
    const teams = createClient(
      TeamService,
      createConnectTransport({ baseUrl: `http://127.0.0.1:${service.port}`, httpVersion: "2" }),
    );
    const { team } = await teams.createTeam(
      { name: "payments" },
      { headers: { authorization: `Bearer ${ROOT_KEY}` } },
    );
    const lines = keychainWalk({ buf: BUF, api: `http://127.0.0.1:${service.grpcPort}/latchkey.v1` });
    const env: Record<string, string> = { ...(process.env as Record<string, string>), ROOT: ROOT_KEY };
    let keychainId = "";
    const outputs: Array<{ line: string; stdout: string; stderr: string; code: number }> = [];
    for (const line of lines) {
      if (line.startsWith("#")) continue;
      const filled = line.replaceAll("<team id>", team?.id ?? "").replaceAll("<keychain id>", keychainId);
      if (filled.startsWith("export KEYCHAIN=")) continue; // set from CreateKeychain's answer below
      // `export SHA=$(…)`: run it, and keep the variable for the lines after it.
      const command = filled.startsWith("export SHA=") ? `${filled}; printf %s "$SHA"` : filled;
      const result = await sh("sh", ["-c", command], { env, timeout: 60_000 }).then(
        ({ stdout, stderr }) => ({ stdout, stderr, code: 0 }),
        (error: { stdout: string; stderr: string; code: number }) => ({
          stdout: error.stdout,
          stderr: error.stderr,
          code: error.code,
        }),
      );
      outputs.push({ line: filled, ...result });
      if (filled.includes("/CreateKeychain")) {
        const created = JSON.parse(result.stdout) as { keychain: { id: string }; secret: string };
        keychainId = created.keychain.id;
        env.KEYCHAIN = created.secret;
      }
      if (filled.startsWith("export SHA=")) env.SHA = result.stdout;
    }
    const [resolved, refused] = outputs.filter((output) => output.line.includes("/ResolveSecrets"));
    for (const output of outputs.slice(0, -1))
      expect(output.code, `${output.line}\n${output.stderr}`).toBe(0);
    expect(JSON.parse(resolved?.stdout ?? "{}")).toEqual({
      keychainId,
      secrets: { STRIPE_SECRET_KEY: "sk_test_4eC39HqLyjWDarjtT1zdp7dc" },
    });
    expect(refused?.code).not.toBe(0);
    expect(refused?.stderr).toContain("permission_denied");
    expect(refused?.stderr).toContain("digest_mismatch");
  });
});
