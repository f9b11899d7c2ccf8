import { spawn } from "node:child_process";

/** What a finished command printed. */
export interface CommandOutput {
  stdout: string;
  stderr: string;
}

/** Options for {@link runCommand}. */
export interface RunCommandOptions {
  /** Extra environment on top of `process.env`. */
  env?: Record<string, string>;
  /** Show the command's output on this process's stdout/stderr instead of collecting it (for apt-get). */
  inherit?: boolean;
  /** Working directory. */
  cwd?: string;
}

/**
 * Runs a command to completion and resolves with its output, or rejects with an error that carries the
 * command line, exit status and output, so a failing `initdb` explains itself in the test log.
 *
 * Waits for `exit`, not `close`: `pg_ctl start` leaves a daemon behind that may hold inherited pipes open.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunCommandOptions = {},
): Promise<CommandOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: options.inherit ? ["ignore", "inherit", "inherit"] : ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", (error) => {
      reject(new Error(`could not run ${command}: ${error.message}`, { cause: error }));
    });
    child.on("exit", (code, signal) => {
      // Give already-buffered output a turn to arrive before judging.
      setImmediate(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        if (code === 0) {
          resolve({ stdout, stderr });
          return;
        }
        const status = signal === null ? `exit code ${code}` : `signal ${signal}`;
        const output = `${stdout}${stderr}`.trim();
        reject(
          new Error(`${[command, ...args].join(" ")} failed (${status})${output ? `:\n${output}` : ""}`),
        );
      });
    });
  });
}
