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

/** What {@link runToExit} saw: the exit code and everything written. */
export interface FinishedCommand extends CommandOutput {
  readonly code: number | null;
}

/**
 * Runs a command with `stdin` written to it and resolves with its exit code and output, whatever
 * the code: for tests that expect a command to fail. `env` is the whole environment (nothing of
 * this process's is inherited), so a test states every setting the command sees.
 *
 * @example
 * ```ts
 * const { code, stdout } = await runToExit(process.execPath, [MAIN, "keychain-rewrap"], { env: { PATH, DATABASE_URL } });
 * ```
 */
export function runToExit(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: string; cwd?: string } = {},
): Promise<FinishedCommand> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? "");
  });
}
