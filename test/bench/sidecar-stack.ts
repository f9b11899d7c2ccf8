import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { closeSync, openSync, readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findFreePort } from "../harness/free-port.js";
import { startNats } from "../harness/nats.js";
import { startPostgres } from "../harness/postgres.js";
import { adminClients } from "./admin-client.js";

// What bench:sidecar and bench:sidecar-cost start, every server in its own process with its output in
// a log file under `dir`: a throw-away PostgreSQL and NATS, the token-service, the upstream app, the
// bare undici proxy and the sidecar (built JavaScript, access log on), and a key issued for the bench.

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TARGETS = fileURLToPath(new URL("./proxy-targets.ts", import.meta.url));
const TSX = ["--conditions=@latchkey/source", "--import", "tsx"];

/** How to run one of the measured processes: under a tool (valgrind) and/or with node flags. */
export interface Wrapping {
  /** A command line the node command is appended to, e.g. `["valgrind", "--tool=callgrind"]`. */
  readonly prefix?: readonly string[];
  readonly nodeFlags?: readonly string[];
}

export interface StackOptions {
  readonly dir: string;
  readonly bareProxy?: Wrapping;
  readonly sidecar?: Wrapping;
  /** Extra sidecar environment (settings under test). */
  readonly sidecarEnv?: Record<string, string>;
  /** How long a wrapped process may take to answer its first request (valgrind is slow). */
  readonly startTimeoutMs?: number;
}

export interface Stack {
  readonly upstreamPort: number;
  readonly bareProxyPort: number;
  readonly sidecarPort: number;
  readonly sidecarAdminPort: number;
  /**
   * Starts one more sidecar before the same token-service, NATS and upstream, with `env` on top
   * of the stack's sidecar settings (bench:sidecar's tracing comparison); stopped with the stack
   * unless stopped before.
   */
  startExtraSidecar(name: string, env: Record<string, string>): Promise<ExtraSidecar>;
  readonly token: string;
  /** A key of the same team and scopes with a rate limit of its own that the bench never reaches. */
  readonly limitedToken: string;
  readonly bareProxy: ChildProcess;
  readonly sidecar: ChildProcess;
  readonly sidecarLog: string;
  /** Stops everything started, last first. */
  stop(): Promise<void>;
}

/** A sidecar started by {@link Stack.startExtraSidecar}. */
export interface ExtraSidecar {
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts a child with output to a log file (a pipe into this process would cost it CPU under load). */
export function startChild(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  logFile: string,
): ChildProcess {
  const fd = openSync(logFile, "a");
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  return child;
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  await exited;
  clearTimeout(timer);
}

/** Waits until `url` answers `status` (GET, fresh connection each try). */
export async function waitForStatus(
  url: string,
  status: number,
  child: ChildProcess,
  logFile: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: process exited:\n${readFileSync(logFile, "utf8")}`);
    const got = await new Promise<number>((resolve) => {
      const req = httpRequest(url, { agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", () => resolve(0));
      req.end();
    });
    if (got === status) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer ${status}:\n${readFileSync(logFile, "utf8")}`);
}

function command(wrapping: Wrapping | undefined, args: readonly string[]): [string, string[]] {
  const node = [...(wrapping?.nodeFlags ?? []), ...args];
  const prefix = wrapping?.prefix ?? [];
  if (prefix.length === 0) return [process.execPath, node];
  return [prefix[0] as string, [...prefix.slice(1), process.execPath, ...node]];
}

/** Starts the whole stack; on failure, stops what it had started and rethrows. */
export async function startStack(options: StackOptions): Promise<Stack> {
  const { dir } = options;
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const step of stops) await step().catch(() => {});
  };
  try {
    const [postgres, nats] = await Promise.all([startPostgres(), startNats()]);
    stops.unshift(
      () => postgres.stop(),
      () => nats.dispose(),
    );
    const rootKey = randomBytes(32).toString("base64url");
    const [upstreamPort, bareProxyPort, tokenPort, tokenGrpcPort, sidecarPort, sidecarAdminPort] =
      (await Promise.all(Array.from({ length: 6 }, () => findFreePort()))) as [
        number,
        number,
        number,
        number,
        number,
        number,
      ];
    const child = (name: string, wrapping: Wrapping | undefined, args: string[], env = {}) => {
      const logFile = join(dir, `${name}.log`);
      const [cmd, argv] = command(wrapping, args);
      const process_ = startChild(cmd, argv, env, logFile);
      stops.unshift(() => stopChild(process_));
      return { process: process_, logFile };
    };
    const timeout = options.startTimeoutMs ?? 30_000;
    const upstream = child("upstream", undefined, [...TSX, TARGETS, "--upstream", String(upstreamPort)]);
    const bare = child("bare-proxy", options.bareProxy, [
      ...TSX,
      TARGETS,
      "--bare-proxy",
      String(bareProxyPort),
      String(upstreamPort),
    ]);
    const tokenService = child("token-service", undefined, [...TSX, "services/token-service/src/main.ts"], {
      DATABASE_URL: postgres.url,
      NATS_URL: nats.url,
      LATCHKEY_ROOT_KEY: rootKey,
      LATCHKEY_LISTEN: `127.0.0.1:${tokenPort}`,
      LATCHKEY_GRPC_LISTEN: `127.0.0.1:${tokenGrpcPort}`,
      LATCHKEY_LOG_LEVEL: "info",
    });
    await waitForStatus(`http://127.0.0.1:${upstreamPort}/`, 200, upstream.process, upstream.logFile);
    await waitForStatus(`http://127.0.0.1:${bareProxyPort}/`, 200, bare.process, bare.logFile, timeout);
    for (let attempt = 0; ; attempt++) {
      if (tokenService.process.exitCode !== null || attempt > 600) {
        throw new Error(`token-service did not start:\n${readFileSync(tokenService.logFile, "utf8")}`);
      }
      if (readFileSync(tokenService.logFile, "utf8").includes("token-service ready")) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const sidecar = child("sidecar", options.sidecar, ["services/sidecar/bin/latchkey-sidecar.js"], {
      LATCHKEY_UPSTREAM: `http://127.0.0.1:${upstreamPort}`,
      LATCHKEY_SIDECAR_LISTEN: `127.0.0.1:${sidecarPort}`,
      LATCHKEY_SIDECAR_ADMIN_LISTEN: `127.0.0.1:${sidecarAdminPort}`,
      LATCHKEY_TOKEN_SERVICE_URL: `http://127.0.0.1:${tokenGrpcPort}`,
      NATS_URL: nats.url,
      // The access log stays on, as in production (to a file here).
      LATCHKEY_LOG_LEVEL: "info",
      ...options.sidecarEnv,
    });
    await waitForStatus(
      `http://127.0.0.1:${sidecarAdminPort}/readyz`,
      200,
      sidecar.process,
      sidecar.logFile,
      timeout,
    );
    const startExtraSidecar = async (name: string, env: Record<string, string>): Promise<ExtraSidecar> => {
      const [port, adminPort] = [await findFreePort(), await findFreePort()];
      const extra = child(name, options.sidecar, ["services/sidecar/bin/latchkey-sidecar.js"], {
        LATCHKEY_UPSTREAM: `http://127.0.0.1:${upstreamPort}`,
        LATCHKEY_SIDECAR_LISTEN: `127.0.0.1:${port}`,
        LATCHKEY_SIDECAR_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
        LATCHKEY_TOKEN_SERVICE_URL: `http://127.0.0.1:${tokenGrpcPort}`,
        NATS_URL: nats.url,
        LATCHKEY_LOG_LEVEL: "info",
        ...options.sidecarEnv,
        ...env,
      });
      await waitForStatus(`http://127.0.0.1:${adminPort}/readyz`, 200, extra.process, extra.logFile, timeout);
      return { port, stop: () => stopChild(extra.process) };
    };
    const { teams, tokens } = adminClients(`http://127.0.0.1:${tokenGrpcPort}`, rootKey);
    const { team } = await teams.createTeam({ name: "bench" });
    const { token } = await tokens.issue({ teamId: team?.id ?? "", name: "bench", scopes: ["read"] });
    const limited = await tokens.issue({
      teamId: team?.id ?? "",
      name: "bench-limited",
      scopes: ["read"],
      rateLimits: [{ name: "bench", limit: 1_000_000_000n, window: { seconds: 3600n, nanos: 0 } }],
    });
    return {
      upstreamPort,
      bareProxyPort,
      sidecarPort,
      sidecarAdminPort,
      startExtraSidecar,
      token,
      limitedToken: limited.token,
      bareProxy: bare.process,
      sidecar: sidecar.process,
      sidecarLog: sidecar.logFile,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
