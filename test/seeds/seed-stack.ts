// One migrated system's stack for a seed test: its own NATS, the real token-service on a fresh
// PostgreSQL database (both shared by the whole file), the demo app as the system's API, and
// sidecar processes configured the way the system's operator would, one per configuration.
import { type NatsServer, startNats } from "../harness/index.js";
import { examplePath } from "../sidecar/examples.js";
import { type RecordingUpstream, startRecordingUpstream } from "../sidecar/recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import { startTestService, type TestService, type TestServiceOptions } from "../token-service/start.js";

/**
 * How long a seed file's `beforeAll` may take: it starts NATS, the token-service and a sidecar
 * process or two, each a few seconds on a busy two-core machine.
 */
export const STARTUP_MS = 120_000;

/** How one sidecar of the stack is configured. */
export interface SeedSidecarOptions {
  /** An example policy in services/sidecar/examples/ (`LATCHKEY_POLICY`)… */
  readonly policy?: string;
  /** …or the text of one, as an operator edited it. */
  readonly policyText?: string;
  /** An example rate-limit file there (`LATCHKEY_RATE_LIMITS`). */
  readonly rateLimits?: string;
  /** The rest of its environment (secrets, …). */
  readonly env?: Record<string, string>;
}

/** A running seed stack. */
export interface SeedStack {
  readonly nats: NatsServer;
  readonly service: TestService;
  readonly upstream: RecordingUpstream;
  /** Starts a sidecar in front of the app, with the token-service's key formats; `close` stops it. */
  sidecar(options: SeedSidecarOptions): Promise<SidecarProcess>;
  close(): Promise<void>;
}

/**
 * Starts NATS, the token-service (with `settings`: the seed's key formats, signing keys, …) and the
 * app. Sidecars get `LATCHKEY_KEY_FORMATS` from the same settings, as a deployment shares one list.
 *
 * @example
 * ```ts
 * const stack = await startSeedStack({ keyFormats: JSON.stringify([{ name: "oag", kind: "hex", prefix: "oag_" }]) });
 * const sidecar = await stack.sidecar({ policy: "policy-003-agents-owner.yaml" });
 * ```
 */
export async function startSeedStack(settings: TestServiceOptions["settings"] = {}): Promise<SeedStack> {
  const [nats, upstream] = await Promise.all([startNats(), startRecordingUpstream()]);
  const sidecars: SidecarProcess[] = [];
  let service: TestService | undefined;
  const close = async () => {
    await Promise.all(sidecars.map((sidecar) => sidecar.stop()));
    await service?.close();
    await upstream.app.close();
    await nats.dispose();
  };
  try {
    service = await startTestService({ natsUrl: nats.url, settings });
  } catch (error) {
    await close();
    throw error;
  }
  const running = service;
  const formats = settings.keyFormats;
  return {
    nats,
    service: running,
    upstream,
    async sidecar(options) {
      const sidecar = await spawnSidecar({
        upstream: upstream.url,
        tokenServiceUrl: running.grpcUrl,
        natsUrl: nats.url,
        ...(options.policyText === undefined ? {} : { policy: options.policyText }),
        env: {
          ...(options.policy === undefined ? {} : { LATCHKEY_POLICY: examplePath(options.policy) }),
          ...(options.rateLimits === undefined
            ? {}
            : { LATCHKEY_RATE_LIMITS: examplePath(options.rateLimits) }),
          ...(formats === undefined ? {} : { LATCHKEY_KEY_FORMATS: String(formats) }),
          ...options.env,
        },
      });
      sidecars.push(sidecar);
      return sidecar;
    },
    close,
  };
}
