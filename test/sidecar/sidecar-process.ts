// The real sidecar as a child process (`services/sidecar/src/main.ts`), configured only through its
// environment variables and a YAML policy file, the way a deployment runs it.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type ServiceProcess, spawnService } from "../bench/service-process.js";

const ENTRY = "services/sidecar/src/main.ts";

/** Options of {@link spawnSidecar}. */
export interface SpawnSidecarOptions {
  /** `http://127.0.0.1:<port>` of the app behind the sidecar. */
  readonly upstream: string;
  /** The token-service's native gRPC URL. */
  readonly tokenServiceUrl: string;
  readonly natsUrl?: string;
  /** YAML text of the policy file; the sidecar's default (`all-private`) when left out. */
  readonly policy?: string;
  /** More environment: `LATCHKEY_ENFORCEMENT`, `LATCHKEY_TRUSTED_PROXIES`, secrets, … */
  readonly env?: Record<string, string>;
}

/** A running sidecar process. */
export interface SidecarProcess {
  /** `http://127.0.0.1:<proxy port>` */
  readonly url: string;
  readonly port: number;
  /** Port of the HTTPS listener, when LATCHKEY_SIDECAR_TLS_CERT/_KEY are set. */
  readonly tlsPort: number | undefined;
  /** `http://127.0.0.1:<admin port>` */
  readonly adminUrl: string;
  /** Port of the ext_authz listener, when `LATCHKEY_SIDECAR_EXTAUTHZ_LISTEN` was given. */
  readonly extAuthzPort: number | undefined;
  readonly process: ServiceProcess;
  /** Everything the child wrote (stdout and stderr). */
  output(): string;
  /** Access-log lines (`"msg":"request"`) written so far, parsed. */
  accessLines(): AccessLine[];
  /** Waits (up to `timeoutMs`) for an access-log line that `match` accepts; the log is flushed once a second. */
  waitForAccessLine(match: (line: AccessLine) => boolean, timeoutMs?: number): Promise<AccessLine>;
  /** SIGTERM, wait for the exit, remove the policy file. */
  stop(): Promise<void>;
}

/** One access-log line as the sidecar writes it. */
export interface AccessLine {
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly decision: string;
  readonly keyId?: string;
  readonly teamId?: string;
  readonly via?: string;
  readonly wouldRefuse?: number;
  readonly [field: string]: unknown;
}

/**
 * Starts the sidecar on ports the kernel picks (`127.0.0.1:0`; they are read back from its
 * "sidecar listening" line, so no other process can take them between choosing and binding),
 * with the access log at `info`.
 */
export async function spawnSidecar(options: SpawnSidecarOptions): Promise<SidecarProcess> {
  const dir = await mkdtemp(join(tmpdir(), "latchkey-sidecar-e2e-"));
  const env: Record<string, string> = {
    LATCHKEY_SIDECAR_LISTEN: "127.0.0.1:0",
    LATCHKEY_SIDECAR_ADMIN_LISTEN: "127.0.0.1:0",
    LATCHKEY_UPSTREAM: options.upstream,
    LATCHKEY_TOKEN_SERVICE_URL: options.tokenServiceUrl,
    LATCHKEY_LOG_LEVEL: "info",
    LATCHKEY_SHUTDOWN_TIMEOUT_MS: "500",
    ...(options.natsUrl === undefined ? {} : { NATS_URL: options.natsUrl }),
    ...options.env,
  };
  if (options.policy !== undefined) {
    const path = join(dir, "policy.yaml");
    await writeFile(path, options.policy);
    env.LATCHKEY_POLICY = path;
  }
  let child: ServiceProcess;
  try {
    child = await spawnService(ENTRY, env, /"msg":"sidecar listening"/);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const ports = /"port":(\d+),"adminPort":(\d+)/.exec(child.output());
  if (ports === null) {
    await child.stop();
    await rm(dir, { recursive: true, force: true });
    throw new Error(`the sidecar did not report its ports:\n${child.output()}`);
  }
  const port = Number(ports[1]);
  const adminPort = Number(ports[2]);
  const tlsPort = /"tlsPort":(\d+)/.exec(child.output())?.[1];
  const extAuthz = /"extAuthzPort":(\d+)/.exec(child.output());
  // Only whole lines: the last piece of the output may still be in the middle of a write.
  const accessLines = () =>
    child
      .output()
      .split("\n")
      .slice(0, -1)
      .filter((line) => line.includes('"msg":"request"'))
      .map((line) => JSON.parse(line) as AccessLine);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    tlsPort: tlsPort === undefined ? undefined : Number(tlsPort),
    adminUrl: `http://127.0.0.1:${adminPort}`,
    extAuthzPort: extAuthz === null ? undefined : Number(extAuthz[1]),
    process: child,
    output: () => child.output(),
    accessLines,
    async waitForAccessLine(match, timeoutMs = 5_000) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const found = accessLines().find(match);
        if (found !== undefined) return found;
        if (performance.now() > deadline) {
          throw new Error(`no matching access-log line within ${timeoutMs} ms:\n${child.output()}`);
        }
        await sleep(50);
      }
    },
    async stop() {
      await child.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs the sidecar with `env` (plus free ports and a policy file when given) and resolves with its
 * exit code and output once it exits: for configurations that must stop start-up. A sidecar that
 * starts instead is stopped and reported as exit code null.
 */
export async function sidecarExit(
  options: Omit<SpawnSidecarOptions, "natsUrl">,
): Promise<{ code: number | null; output: string }> {
  try {
    const sidecar = await spawnSidecar(options);
    const output = sidecar.output();
    await sidecar.stop();
    return { code: null, output };
  } catch (error) {
    const message = (error as Error).message;
    const code = /exited with (\d+) before it was ready/.exec(message)?.[1];
    if (code === undefined) throw error;
    return { code: Number(code), output: message };
  }
}
