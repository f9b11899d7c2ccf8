import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ensureBinaries } from "./ensure-binaries.js";
import { findFreePort } from "./free-port.js";

/** Options for {@link startNats}. */
export interface StartNatsOptions {
  /** Port to listen on; a free one when left out. */
  port?: number;
  /** Extra `nats-server` arguments. */
  args?: readonly string[];
  /** How long to wait for the server to accept connections, in ms. Default 15 000. */
  startTimeoutMs?: number;
}

/** A `nats-server -js` process owned by a test, with its own JetStream store. */
export interface NatsServer {
  /** `nats://127.0.0.1:<port>`; the same across restarts. */
  url: string;
  port: number;
  /** JetStream store directory (`-sd`); kept across stop/restart. */
  storeDir: string;
  /** Whether the process is up. */
  readonly running: boolean;
  /** Stops the server (SIGTERM, then waits for it to exit), keeping the store; simulates an outage. */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL (a crash: no goodbye to clients or peers) and waits for its exit. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and store (stopping it first if it is running). */
  restart(): Promise<void>;
  /** Stops the server and deletes its store. */
  dispose(): Promise<void>;
}

const KILL_AFTER_MS = 10_000;
const OUTPUT_LIMIT = 8_192;

/**
 * Starts `nats-server` with JetStream on 127.0.0.1, a free port and a fresh temporary store, and waits
 * until it accepts client connections. Tests that take NATS down and up again use this rather than the
 * run-wide server from the global setup.
 *
 * @example
 * ```ts
 * const nats = await startNats();
 * await nats.stop();    // clients now see a disconnect
 * await nats.restart(); // same url, streams kept
 * await nats.dispose();
 * ```
 */
export async function startNats(options: StartNatsOptions = {}): Promise<NatsServer> {
  const { natsServer } = await ensureBinaries();
  const port = options.port ?? (await findFreePort());
  const dir = await mkdtemp(join(tmpdir(), "latchkey-nats-"));
  const storeDir = join(dir, "js");
  const args = ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir, ...(options.args ?? [])];
  const startTimeoutMs = options.startTimeoutMs ?? 15_000;

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";
  const killNow = () => child?.kill("SIGKILL");

  const start = async () => {
    output = "";
    const spawned = spawn(natsServer, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = spawned;
    const collect = (chunk: string) => {
      output = (output + chunk).slice(-OUTPUT_LIMIT);
    };
    spawned.stdout.setEncoding("utf8").on("data", collect);
    spawned.stderr.setEncoding("utf8").on("data", collect);
    exited = new Promise((resolve) => {
      const gone = () => {
        if (child === spawned) child = undefined;
        resolve();
      };
      spawned.once("exit", gone);
      // A spawn failure emits "error" and never "exit".
      spawned.once("error", (error) => {
        output += `\n${error.message}`;
        gone();
      });
    });
    process.once("exit", killNow);
    try {
      await waitUntilAccepting(port, startTimeoutMs, () => child !== spawned);
    } catch (error) {
      await stop();
      throw new Error(`nats-server ${args.join(" ")} did not start: ${(error as Error).message}\n${output}`);
    }
  };

  const kill = async () => {
    process.off("exit", killNow);
    child?.kill("SIGKILL");
    await exited;
  };

  const stop = async () => {
    const current = child;
    process.off("exit", killNow);
    if (current === undefined) return;
    current.kill("SIGTERM");
    const timer = setTimeout(() => current.kill("SIGKILL"), KILL_AFTER_MS);
    await exited;
    clearTimeout(timer);
  };

  try {
    await start();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get running() {
      return child !== undefined;
    },
    stop,
    kill,
    async restart() {
      await stop();
      await start();
    },
    async dispose() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Polls until a TCP connection to the port gets the NATS `INFO` greeting. Readiness is a condition to
 * wait for, not a fixed delay; `gaveUp` stops the wait early when the process has already exited.
 */
export async function waitUntilAccepting(
  port: number,
  timeoutMs: number,
  gaveUp: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gaveUp()) throw new Error("the process exited");
    if (await greets(port)) return;
    await sleep(25);
  }
  throw new Error(`no INFO greeting on port ${port} within ${timeoutMs} ms`);
}

function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: "127.0.0.1", port });
    let received = "";
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => finish(false));
    socket.on("error", () => finish(false));
    socket.setEncoding("utf8").on("data", (chunk: string) => {
      received += chunk;
      if (received.length >= 5) finish(received.startsWith("INFO "));
    });
    socket.on("end", () => finish(false));
  });
}
