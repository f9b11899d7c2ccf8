// `latchkey-token-service import`, the real command in its own process, as an operator runs it: the
// admin key and the service URL in its environment, rows from a file or standard input.
import { spawn } from "node:child_process";
import { resolve } from "node:path";

const MAIN = resolve("services/token-service/src/main.ts");

/** How a run of the command ended. */
export interface ImportRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link runImportCommand}. */
export interface ImportRunOptions {
  /** `LATCHKEY_TOKEN_SERVICE_URL`: the token-service's gRPC URL. */
  readonly url: string;
  /** `LATCHKEY_ADMIN_KEY`. */
  readonly adminKey: string;
  /** More environment, or overrides (`LATCHKEY_ADMIN_KEY: ""`). */
  readonly env?: Record<string, string>;
  /** What the command reads on standard input. */
  readonly stdin?: string;
}

/**
 * Runs `latchkey-token-service import <args>` to its end and returns its exit code and output.
 *
 * @example
 * ```ts
 * const run = await runImportCommand(["keys.csv"], { url: service.grpcUrl, adminKey: ROOT_KEY });
 * expect(run.code).toBe(0);
 * ```
 */
export function runImportCommand(args: string[], options: ImportRunOptions): Promise<ImportRun> {
  return new Promise((done, fail) => {
    const child = spawn(
      process.execPath,
      ["--conditions=@latchkey/source", "--import", "tsx", MAIN, "import", ...args],
      {
        cwd: resolve("."),
        env: {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? "/tmp",
          LATCHKEY_ADMIN_KEY: options.adminKey,
          LATCHKEY_TOKEN_SERVICE_URL: options.url,
          ...options.env,
        },
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? "");
  });
}
