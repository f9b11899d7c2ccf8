import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureNginx } from "./ensure-binaries.js";
import { findFreePort } from "./free-port.js";

/** The shipped nginx example, relative to this file. */
export const NGINX_EXAMPLE = new URL("../../deploy/nginx/latchkey-auth-request.conf", import.meta.url);

/** A running nginx. */
export interface NginxServer {
  readonly port: number;
  /** The temp prefix directory (logs, cache). */
  readonly dir: string;
  stop(): Promise<void>;
}

/**
 * Runs the shipped example config with a real nginx, in the foreground, under
 * a temporary prefix: the example's addresses are pointed at the given sidecar
 * and app, its cache path into the temp dir.
 */
export async function startNginxExample(options: {
  sidecarPort: number;
  appPort: number;
  /** Drop the auth cache lines (ask the sidecar on every request). */
  withoutCache?: boolean;
  workerProcesses?: number;
}): Promise<NginxServer> {
  const nginx = await ensureNginx();
  const port = await findFreePort();
  const dir = mkdtempSync(join(tmpdir(), "lk-nginx-"));
  for (const sub of ["logs", "tmp", "cache"]) mkdirSync(join(dir, sub));
  let example = readFileSync(NGINX_EXAMPLE, "utf8")
    .replace("server 127.0.0.1:8080;", `server 127.0.0.1:${options.sidecarPort};`)
    .replace("server 127.0.0.1:3000;", `server 127.0.0.1:${options.appPort};`)
    .replace("listen 8000;", `listen 127.0.0.1:${port};`)
    .replace("/var/cache/nginx/latchkey", join(dir, "cache"))
    .replace("/var/log/nginx/latchkey-access.log", join(dir, "logs", "access.log"));
  if (options.withoutCache)
    example = example.replace(/^\s*(proxy_cache|proxy_cache_path|proxy_ignore_headers)\b.*$/gm, "");
  writeFileSync(join(dir, "latchkey.conf"), example);
  const root = process.getuid?.() === 0 ? "user root;\n" : "";
  writeFileSync(
    join(dir, "nginx.conf"),
    `${root}worker_processes ${options.workerProcesses ?? 1};
error_log ${join(dir, "logs", "error.log")} warn;
pid ${join(dir, "nginx.pid")};
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(dir, "tmp", "body")};
  proxy_temp_path ${join(dir, "tmp", "proxy")};
  fastcgi_temp_path ${join(dir, "tmp", "fastcgi")};
  uwsgi_temp_path ${join(dir, "tmp", "uwsgi")};
  scgi_temp_path ${join(dir, "tmp", "scgi")};
  include ${join(dir, "latchkey.conf")};
}
`,
  );
  const child: ChildProcess = spawn(nginx, ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await waitForPort(
    port,
    () => child.exitCode !== null,
    () => `nginx did not start: ${stderr}`,
  );
  return {
    port,
    dir,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPort(port: number, failed: () => boolean, message: () => string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (failed()) throw new Error(message());
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(message());
}
