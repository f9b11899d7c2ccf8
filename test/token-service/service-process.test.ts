// The real binary: `node --import tsx services/token-service/src/main.ts`.
// Bad configuration stops it with exit code 2 naming the setting; SIGTERM
// lets in-flight calls finish and exits 0; no log line carries a token.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { VERIFIER_HEARTBEAT_SUBJECT_PREFIX, verifierSubject } from "@latchkey/events";
import { TeamService, TokenService, VerifierHeartbeatSchema, VerifyResult } from "@latchkey/proto";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { migrations } from "../../services/token-service/src/db/migrations/index.js";
import { freshDatabaseUrl, natsUrl } from "../harness/index.js";
import { ROOT_KEY } from "./start.js";

const MAIN = resolve("services/token-service/src/main.ts");

interface Child {
  readonly process: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
  /** Resolves with the first JSON log line whose msg is `msg`. */
  logLine(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

function startMain(env: Record<string, string>, args: string[] = []): Child {
  const child = spawn(process.execPath, ["--conditions=@latchkey/source", "--import", "tsx", MAIN, ...args], {
    cwd: resolve("."),
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const waiters = new Set<() => void>();
  const collect = (chunk: string) => {
    output += chunk;
    for (const wake of waiters) wake();
  };
  child.stdout?.setEncoding("utf8").on("data", collect);
  child.stderr?.setEncoding("utf8").on("data", collect);
  const exited = once(child, "exit").then(([code]) => code as number | null);
  const find = (msg: string) =>
    output
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.msg === msg);
  return {
    process: child,
    exited,
    output: () => output,
    async logLine(msg, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = find(msg);
        if (line) return line;
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`no "${msg}" log line; output:\n${output}`);
        }
        await new Promise<void>((wake) => {
          waiters.add(wake);
          setTimeout(wake, 100);
        }).finally(() => waiters.clear());
      }
    },
  };
}

describe.concurrent("the token-service binary", () => {
  describe("bad configuration", () => {
    it("stops start-up with exit code 2, naming every bad setting", async () => {
      const child = startMain({
        LATCHKEY_LISTEN: "nope",
        LATCHKEY_ROOT_KEY: "too-short",
        LATCHKEY_LAST_USED_FLUSH_MS: "soon",
        DATABASE_URL: "postgres://127.0.0.1:1/never",
      });
      expect(await child.exited).toBe(2);
      for (const name of ["LATCHKEY_LISTEN", "LATCHKEY_ROOT_KEY", "LATCHKEY_LAST_USED_FLUSH_MS"]) {
        expect(child.output()).toContain(name);
      }
      expect(child.output()).not.toContain("failed to start");
      expect(child.output()).not.toContain("too-short");
    });
  });

  describe("the migrate command", () => {
    it("applies the migrations and exits 0", async () => {
      const child = startMain({ DATABASE_URL: await freshDatabaseUrl("cli") }, ["migrate"]);
      expect(await child.exited).toBe(0);
      expect((await child.logLine("migrations applied")).applied).toEqual(Object.keys(migrations));
    });
  });

  describe("a running service", () => {
    it("drains an in-flight call on SIGTERM, exits 0, and never logs a token", async () => {
      const databaseUrl = await freshDatabaseUrl("sigterm");
      const child = startMain({
        DATABASE_URL: databaseUrl,
        NATS_URL: natsUrl(),
        LATCHKEY_LISTEN: "127.0.0.1:0",
        LATCHKEY_GRPC_LISTEN: "127.0.0.1:0",
        LATCHKEY_ROOT_KEY: ROOT_KEY,
        LATCHKEY_LOG_LEVEL: "debug",
      });
      const nc = await connect({ servers: natsUrl() });
      let heartbeats: NodeJS.Timeout | undefined;
      try {
        // Port 0 for both listeners: the ready line says which ports they got.
        const ready = await child.logLine("token-service ready");
        const headers = { authorization: `Bearer ${ROOT_KEY}` };
        const connectClient = createConnectTransport({
          baseUrl: `http://127.0.0.1:${ready.port}`,
          httpVersion: "2",
        });
        const grpcClient = createGrpcTransport({ baseUrl: `http://127.0.0.1:${ready.grpcPort}` });
        const tokens = createClient(TokenService, connectClient);
        const grpcTokens = createClient(TokenService, grpcClient);
        const { team } = await createClient(TeamService, connectClient).createTeam(
          { name: "sigterm" },
          { headers },
        );
        const teamId = team?.id ?? "";
        const issue = async (name: string) => {
          const { key, token } = await tokens.issue({ teamId, name, scopes: ["read"] }, { headers });
          return { keyId: key?.id ?? "", token };
        };
        const held = await issue("held");
        const probe = await issue("probe");
        const issuedTokens = [held.token, probe.token];
        expect((await tokens.verify({ token: held.token })).result).toBe(VerifyResult.VALID);
        expect((await grpcTokens.verify({ token: held.token })).result).toBe(VerifyResult.VALID);

        // A verifier that is live (heartbeats) but never acknowledges: a Revoke
        // that waits for confirmation stays in flight for its whole wait_timeout.
        const heartbeat = toBinary(
          VerifierHeartbeatSchema,
          create(VerifierHeartbeatSchema, { verifierId: "silent", interval: { seconds: 10n, nanos: 0 } }),
        );
        const beat = () =>
          nc.publish(verifierSubject(VERIFIER_HEARTBEAT_SUBJECT_PREFIX, "silent"), heartbeat);
        beat();
        heartbeats = setInterval(beat, 100);
        let live = 0;
        for (let i = 0; i < 50 && live === 0; i++) {
          const { key, token } = await tokens.issue({ teamId, name: `warmup-${i}` }, { headers });
          issuedTokens.push(token);
          const { propagation } = await tokens.revoke(
            { keyId: key?.id ?? "", waitTimeout: { seconds: 0n, nanos: 50_000_000 } },
            { headers },
          );
          live = propagation?.liveVerifiers ?? 0;
        }
        expect(live).toBe(1);

        const heldCall = grpcTokens.revoke(
          { keyId: held.keyId, waitTimeout: { seconds: 2n, nanos: 0 } },
          { headers },
        );
        const sql = new pg.Client({ connectionString: databaseUrl });
        await sql.connect();
        try {
          for (const deadline = Date.now() + 10_000; ; ) {
            const { rows } = await sql.query("select revoked_at from api_keys where id = $1", [held.keyId]);
            if (rows[0]?.revoked_at) break;
            if (Date.now() > deadline) throw new Error("the held Revoke never committed");
            await sleep(10);
          }
        } finally {
          await sql.end();
        }
        // The Revoke has committed and is waiting for the silent verifier.
        const verifyCall = tokens.verify({ token: probe.token }).then(
          (r) => VerifyResult[r.result],
          (e: unknown) => {
            // Refused before the handler ran, so safe to retry. connect-node 2.1
            // reports an HTTP/2 REFUSED_STREAM as "internal" on the client side.
            const error = ConnectError.from(e);
            return error.code === Code.Unavailable || error.message.includes("REFUSED_STREAM")
              ? "refused"
              : error.message;
          },
        );
        const signalled = Date.now();
        child.process.kill("SIGTERM");

        const response = await heldCall;
        expect(response.key?.revokeTime).toBeDefined();
        expect(response.propagation).toMatchObject({ liveVerifiers: 1, confirmed: 0, complete: false });
        // A call racing the signal either finished or was refused unprocessed; it never hangs or breaks.
        expect(["VALID", "refused"]).toContain(await verifyCall);
        expect(await child.exited).toBe(0);
        expect(Date.now() - signalled).toBeLessThan(10_000);

        const output = child.output();
        expect(output).toContain('"msg":"shutting down"');
        expect(output).toContain('"msg":"token-service stopped"');
        for (const token of issuedTokens) expect(output).not.toContain(token);
        expect(output).not.toContain(ROOT_KEY);
        for (const line of output.split("\n").filter((l) => l !== ""))
          expect(() => JSON.parse(line)).not.toThrow();
      } finally {
        clearInterval(heartbeats);
        await nc.close();
        if (child.process.exitCode === null) child.process.kill("SIGKILL");
      }
    });
  });
});
