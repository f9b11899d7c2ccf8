import { checkNatsClientFiles } from "@latchkey/config";
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import type { SidecarConfig } from "../config.js";
import type { Policy } from "../policy/policy.js";
import { loadRateLimits } from "./load-rate-limits.js";
import { createNatsCountExchange } from "./nats-count-exchange.js";
import { type RateLimitStep, rateLimitStep } from "./rate-limit-step.js";
import { createRateLimiter } from "./rate-limiter.js";

/** The sidecar's rate limiting, started. */
export interface RateLimits {
  readonly step: RateLimitStep;
  close(): Promise<void>;
}

/** Options of {@link startRateLimits}. */
export interface StartRateLimitsOptions {
  readonly config: SidecarConfig;
  readonly policy: Policy;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly isTrusted: (address: string) => boolean;
}

/**
 * Builds the limiter from `LATCHKEY_RATE_LIMITS` and the policy's rules, and,
 * with `NATS_URL` set, the exchange that shares its counts with the other
 * sidecars. Gauges: `latchkey_sidecar_rate_limit_shared` (0 while counting
 * alone) and `latchkey_sidecar_rate_limit_peers`.
 *
 * @throws RateLimitConfigError or Error naming a bad file or an unknown tier.
 */
export function startRateLimits(options: StartRateLimitsOptions): RateLimits {
  const { config, logger, registry } = options;
  const file = config.rateLimits === undefined ? undefined : loadRateLimits(config.rateLimits);
  const limiter = createRateLimiter({
    file,
    policy: options.policy,
    isTrusted: options.isTrusted,
    maxCounters: config.rateLimitMaxCounters,
    expectedPeers: config.rateLimitExpectedPeers,
    onUnknownTier: (tier) =>
      logger.warn({ tier }, "rate limits: a key names a tier LATCHKEY_RATE_LIMITS does not define"),
  });
  let shared = false;
  let peers = config.rateLimitExpectedPeers;
  new Gauge({
    name: "latchkey_sidecar_rate_limit_shared",
    help: "1 while rate-limit counts are shared with the other sidecars over NATS; 0 while this sidecar counts alone and admits limit / peers.",
    registers: [registry],
    collect() {
      this.set(shared ? 1 : 0);
    },
  });
  new Gauge({
    name: "latchkey_sidecar_rate_limit_peers",
    help: "Sidecars this one shares its rate limits with, itself included (heard over NATS, or LATCHKEY_RATE_LIMIT_EXPECTED_PEERS).",
    registers: [registry],
    collect() {
      this.set(exchange?.peers() ?? peers);
    },
  });
  // Without NATS there is nobody to hear from: every sidecar admits limit / expected peers.
  limiter.setShared(false, config.rateLimitExpectedPeers);
  const exchange =
    config.natsUrl === undefined
      ? undefined
      : createNatsCountExchange({
          limiter,
          nats: {
            servers: config.natsUrl,
            name: "latchkey-sidecar-ratelimit",
            ...checkNatsClientFiles(config),
          },
          syncIntervalMs: config.rateLimitSyncMs,
          logger,
          onModeChange: (value, count) => {
            shared = value;
            peers = count;
          },
        });
  if (exchange === undefined) {
    logger.info(
      { expectedPeers: config.rateLimitExpectedPeers },
      "rate limits: no NATS_URL, so counts are not shared; this sidecar admits limit / LATCHKEY_RATE_LIMIT_EXPECTED_PEERS",
    );
  }
  return { step: rateLimitStep(limiter), close: async () => exchange?.close() };
}
