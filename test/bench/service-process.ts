import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A child process running a Latchkey entry point under tsx. */
export interface ServiceProcess {
  readonly child: ChildProcess;
  /** Everything it wrote, for diagnostics. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Spawns `node --import tsx <entry>` from the repository root with `env`, and
 * resolves when a line of its output matches `ready` (or rejects on exit or
 * after `timeoutMs`). Benchmarks run servers in their own processes so the
 * load generator does not compete with them inside one event loop.
 */
export async function spawnService(
  entry: string,
  env: Record<string, string>,
  ready: RegExp,
  timeoutMs = 30_000,
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ["--conditions=@latchkey/source", "--import", "tsx", entry], {
    cwd: ROOT,
    env: { ...process.env, LATCHKEY_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = once(child, "exit");
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${entry} not ready after ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.length > 1_000_000) output = output.slice(-100_000);
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${entry} exited with ${code} before it was ready:\n${output}`));
    });
  });
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
