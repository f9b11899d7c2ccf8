import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants } from "node:fs";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import type { AppUpstream, HandlerRun } from "./handler-run.js";

const SCRIPT = fileURLToPath(new URL("./wsgi-app.py", import.meta.url));

/** Debian's Python when present (the one whose standard library is complete), else `python3` on PATH. */
function python(): string {
  try {
    accessSync("/usr/bin/python3", constants.X_OK);
    return "/usr/bin/python3";
  } catch {
    return "python3";
  }
}

/**
 * Starts `wsgi-app.py` (wsgiref) as a child process on a port the kernel picks, and reads its
 * handler runs from its private runs port.
 */
export async function startWsgiApp(): Promise<AppUpstream> {
  const child: ChildProcess = spawn(python(), [SCRIPT], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8_192);
  });
  const exited = once(child, "exit");
  const ports = await new Promise<{ port: number; runsPort: number }>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`wsgi-app.py did not start:\n${output}`)), 15_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split("\n")[0];
      if (stdout.includes("\n") && line !== undefined) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { port: number; runsPort: number });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`wsgi-app.py exited with ${code}:\n${output}`));
    });
  });
  let next = 0;
  return {
    name: "wsgi",
    stacks: ["wsgi"],
    port: ports.port,
    async drain() {
      const answer = await getJson<{ runs: HandlerRun[]; next: number }>(
        ports.runsPort,
        `/runs?after=${next}`,
      );
      next = answer.next;
      return answer.runs.map((run) => ({ ...run, caseId: run.caseId ?? undefined }));
    },
    async close() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
}

function getJson<T>(port: number, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as T));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}
