import { checkNatsClientFiles } from "@latchkey/config";
import {
  createMemoryKeyEventBus,
  createNatsKeyEventBus,
  type KeyEventBus,
  type NatsKeyEventBus,
  TOKEN_SERVICE_INBOX_PREFIX,
} from "@latchkey/events";
import type { Logger } from "pino";
import type { TokenServiceConfig } from "./config.js";

/** The token-service's key event bus, and what must happen before events can be read from it. */
export interface OpenedKeyEventBus {
  readonly bus: KeyEventBus;
  /**
   * On NATS only: resolves once the bus is connected and the stream exists
   * (subscribing needs it); pass it to the row cache feed's
   * `subscribeWhenReady`. Undefined when a subscription can start now.
   */
  readonly streamReady?: (closed: AbortSignal) => Promise<void>;
}

/**
 * Opens the NATS JetStream bus when `natsUrl` is set, otherwise the
 * in-process bus. The service starts even while NATS is down: changes wait in
 * the outbox and the publisher retries; the stream is created as soon as NATS
 * answers.
 */
export function openKeyEventBus(config: TokenServiceConfig, logger: Logger): OpenedKeyEventBus {
  if (!config.natsUrl) return { bus: createMemoryKeyEventBus() };
  const bus = createNatsKeyEventBus({
    servers: config.natsUrl,
    name: "latchkey-token-service",
    ...checkNatsClientFiles(config),
    inboxPrefix: TOKEN_SERVICE_INBOX_PREFIX,
    streamMaxAgeMs: config.streamMaxAgeS * 1000,
    streamMaxBytes: config.streamMaxBytes,
    replicas: config.streamReplicas,
    usageStreamMaxAgeMs: config.usageStreamMaxAgeS * 1000,
    logger,
  });
  return { bus, streamReady: natsStreamReady(bus, logger) };
}

function natsStreamReady(bus: NatsKeyEventBus, logger: Logger): (closed: AbortSignal) => Promise<void> {
  let streamReady = false;
  return async (closed) => {
    await bus.connected();
    if (closed.aborted || streamReady) return;
    const { created } = await bus.ensureStream();
    logger.info({ created }, "key event stream ready");
    const usage = await bus.ensureUsageStream();
    logger.info({ created: usage.created }, "usage stream ready");
    streamReady = true;
  };
}
