import { pino } from "pino";
import { type DemoApp, startDemoApp } from "../demo/demo-app.js";
import type { SidecarConfigInput } from "../src/config.js";
import { parseSidecarConfig } from "../src/config.js";
import { compilePolicy } from "../src/policy/policy.js";
import { type SidecarHandle, startSidecar } from "../src/sidecar.js";
import { createKeyCheckerFixture, type KeyCheckerFixture } from "./key-checker.js";

/** A demo app, a verifier fixture and a sidecar in front of the app, all on free ports. */
export interface SidecarStack {
  readonly app: DemoApp;
  readonly keys: KeyCheckerFixture;
  readonly sidecar: SidecarHandle;
  /** `http://127.0.0.1:<sidecar port>` */
  readonly url: string;
  /** Access-log lines written so far. */
  readonly logLines: Record<string, unknown>[];
  /** Raw log output, to check that no token ever appears. */
  logText(): string;
  close(): Promise<void>;
}

/** Options of {@link startSidecarStack}. */
export interface SidecarStackOptions {
  /** A policy document (default: the `all-private` preset). */
  readonly policy?: unknown;
  readonly env?: NodeJS.ProcessEnv;
  readonly config?: Partial<SidecarConfigInput>;
  readonly maxStaleMs?: number;
}

/** Starts a {@link SidecarStack}. */
export async function startSidecarStack(options: SidecarStackOptions = {}): Promise<SidecarStack> {
  const app = await startDemoApp({ port: 0 });
  const keys = await createKeyCheckerFixture({ maxStaleMs: options.maxStaleMs });
  const chunks: string[] = [];
  const logger = pino(
    { level: "info" },
    {
      write(line: string) {
        chunks.push(line);
      },
    },
  );
  const sidecar = await startSidecar(
    parseSidecarConfig({
      upstream: `http://127.0.0.1:${app.port}`,
      listen: "127.0.0.1:0",
      adminListen: "127.0.0.1:0",
      shutdownTimeoutMs: 500,
      ...options.config,
    }),
    {
      keyChecker: keys.verifier,
      logger,
      policy: compilePolicy(options.policy ?? { preset: "all-private" }, { env: options.env ?? {} }),
    },
  );
  return {
    app,
    keys,
    sidecar,
    url: `http://127.0.0.1:${sidecar.port}`,
    get logLines() {
      return chunks
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => line.msg === "request");
    },
    logText: () => chunks.join(""),
    async close() {
      await sidecar.close();
      await keys.close();
      await app.close();
    },
  };
}

/** What the demo app reports it received. */
export interface EchoedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly bodyBytes: number;
}
