import { create } from "@bufbuild/protobuf";
import { VerifyRequestSchema } from "@latchkey/proto";
import { generateToken } from "@latchkey/token";
import type { VerifyClient } from "./verify-client.js";

/** Options of {@link createTokenServiceHealth}. */
export interface TokenServiceHealthOptions {
  readonly client: VerifyClient;
  /** Deadline of each probe. */
  readonly timeoutMs: number;
  /** While unreachable, probe this often; 0 or less: never probe, wait for the next real Verify. */
  readonly probeIntervalMs: number;
}

/** Whether the token-service answered the last Verify, and a probe that notices its return. */
export interface TokenServiceHealth {
  /** False since a Verify failed, until one (or a probe) succeeds. */
  reachable(): boolean;
  /** Records the outcome of a Verify; an unreachable service is probed until it answers. */
  markReachable(value: boolean): void;
  /** Stops probing. */
  close(): void;
}

/**
 * Creates the verifier's view of the token-service's reachability, which
 * drives `isHealthy()` and so readiness: without a probe, a verifier with a
 * warm cache would stay unready until a miss happened to reach the service.
 *
 * @example
 * ```ts
 * const health = createTokenServiceHealth({ client, timeoutMs: 2_000, probeIntervalMs: 1_000 });
 * try { await client.verify(request); health.markReachable(true); } catch { health.markReachable(false); }
 * ```
 */
export function createTokenServiceHealth(options: TokenServiceHealthOptions): TokenServiceHealth {
  const { client, timeoutMs, probeIntervalMs } = options;
  let reachable = true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  function markReachable(value: boolean): void {
    reachable = value;
    if (value || closed || timer !== undefined || probeIntervalMs <= 0) return;
    timer = setTimeout(async () => {
      timer = undefined;
      // A random well-formed token: any answer proves the service is back.
      const token = generateToken({ prefix: "lk", environment: "test" });
      try {
        await client.verify(create(VerifyRequestSchema, { token }), { timeoutMs });
        markReachable(true);
      } catch {
        markReachable(false);
      }
    }, probeIntervalMs);
    timer.unref();
  }

  return {
    reachable: () => reachable,
    markReachable,
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
