import type {
  KeyEvent,
  OutboxCurrency,
  OutboxCurrencyRequest,
  UsageReport,
  VerifierAck,
  VerifierHeartbeat,
} from "@latchkey/proto";
import type {
  KeyEventBus,
  KeyEventDelivery,
  KeyEventSubscriber,
  KeyEventSubscription,
  VerifierMessage,
} from "./key-event-bus.js";
import type { OutboxCurrencyQuestion } from "./outbox-currency-transport.js";
import type { UsageDelivery } from "./usage-report-transport.js";

/** Options of {@link createMemoryKeyEventBus}. */
export interface MemoryKeyEventBusOptions {
  /** Events kept for late or resuming subscribers (default 10,000). Older ones are dropped. */
  readonly retain?: number;
}

interface MemorySubscriber {
  readonly subscriber: KeyEventSubscriber;
  /** Serializes delivery so async handlers see events in order. */
  chain: Promise<void>;
  closed: boolean;
}

/**
 * The in-process key event bus used when `NATS_URL` is unset: the token-service
 * and any verifier in the same process share it. It keeps the last `retain`
 * events so a subscriber can resume by sequence, de-duplicates by message id,
 * and reports a gap when a subscriber asks for events it no longer holds, just
 * like the JetStream implementation.
 *
 * @example
 * ```ts
 * const bus = createMemoryKeyEventBus();
 * await bus.subscribe({ onEvent: ({ event }) => cache.evict(event.keyId) });
 * await bus.publish(event, "outbox-42");
 * ```
 */
export function createMemoryKeyEventBus(options: MemoryKeyEventBusOptions = {}): KeyEventBus {
  const retain = options.retain ?? 10_000;
  const log: KeyEventDelivery[] = [];
  const seenIds = new Map<string, number>();
  const subscribers = new Set<MemorySubscriber>();
  const verifierHandlers = new Set<(message: VerifierMessage) => void>();
  const currencyHandlers = new Set<(question: OutboxCurrencyQuestion) => void>();
  let sequence = 0;
  let closed = false;
  const usage = createMemoryUsageQueue(retain);

  function deliver(entry: MemorySubscriber, delivery: KeyEventDelivery): void {
    entry.chain = entry.chain.then(async () => {
      if (entry.closed) return;
      try {
        await entry.subscriber.onEvent(delivery);
      } catch {
        // A throwing subscriber must not stop delivery; as on JetStream, the
        // event it may not have applied is reported as lost.
        entry.subscriber.onGap?.({ afterSequence: delivery.sequence, firstAvailable: delivery.sequence + 1 });
      }
    });
  }

  function emitVerifierMessage(message: VerifierMessage): void {
    // Delivered asynchronously, as over a network.
    queueMicrotask(() => {
      for (const handler of verifierHandlers) handler(message);
    });
  }

  return {
    async publish(event: KeyEvent, messageId: string) {
      if (closed) throw new Error("key event bus is closed");
      const existing = seenIds.get(messageId);
      if (existing !== undefined) return { sequence: existing, duplicate: true };
      sequence += 1;
      const delivery: KeyEventDelivery = { sequence, event, publishedAt: Date.now() };
      log.push(delivery);
      seenIds.set(messageId, sequence);
      if (log.length > retain) {
        const dropped = log.shift();
        for (const [id, seq] of seenIds) {
          if (seq <= (dropped?.sequence ?? 0)) seenIds.delete(id);
          else break;
        }
      }
      for (const entry of subscribers) deliver(entry, delivery);
      return { sequence, duplicate: false };
    },

    async subscribe(subscriber: KeyEventSubscriber, subscribeOptions = {}): Promise<KeyEventSubscription> {
      if (closed) throw new Error("key event bus is closed");
      const entry: MemorySubscriber = { subscriber, chain: Promise.resolve(), closed: false };
      const after = subscribeOptions.afterSequence;
      if (after !== undefined && after < sequence) {
        const first = log[0]?.sequence ?? sequence + 1;
        if (first > after + 1) subscriber.onGap?.({ afterSequence: after, firstAvailable: first });
        for (const delivery of log) if (delivery.sequence > after) deliver(entry, delivery);
      }
      subscribers.add(entry);
      subscriber.onConnectionChange?.(true);
      return {
        async close() {
          entry.closed = true;
          subscribers.delete(entry);
        },
      };
    },

    async lastSequence() {
      return sequence;
    },

    sendAck(ack: VerifierAck) {
      if (!closed) emitVerifierMessage({ kind: "ack", ack });
    },

    sendHeartbeat(heartbeat: VerifierHeartbeat) {
      if (!closed) emitVerifierMessage({ kind: "heartbeat", heartbeat });
    },

    onVerifierMessage(handler) {
      verifierHandlers.add(handler);
      return {
        async close() {
          verifierHandlers.delete(handler);
        },
      };
    },

    requestOutboxCurrency(request: OutboxCurrencyRequest, timeoutMs: number): Promise<OutboxCurrency> {
      if (closed) return Promise.reject(new Error("key event bus is closed"));
      if (currencyHandlers.size === 0) return Promise.reject(new Error("no token-service answers"));
      return new Promise((resolve, reject) => {
        let answered = false;
        const timer = setTimeout(() => {
          answered = true;
          reject(new Error("no answer to the outbox currency request"));
        }, timeoutMs);
        timer.unref?.();
        const respond = (answer: OutboxCurrency) => {
          if (answered) return;
          answered = true;
          clearTimeout(timer);
          resolve(answer);
        };
        // Delivered asynchronously, as over a network.
        queueMicrotask(() => {
          for (const handler of currencyHandlers) handler({ request, respond });
        });
      });
    },

    onOutboxCurrencyRequest(handler) {
      currencyHandlers.add(handler);
      return {
        async close() {
          currencyHandlers.delete(handler);
        },
      };
    },

    async publishUsage(report: UsageReport, messageId: string) {
      if (closed) throw new Error("key event bus is closed");
      return usage.publish(report, messageId);
    },

    async consumeUsage(handler) {
      if (closed) throw new Error("key event bus is closed");
      return usage.consume(handler);
    },

    isConnected() {
      return !closed;
    },

    async close() {
      closed = true;
      usage.close();
      for (const entry of subscribers) entry.closed = true;
      subscribers.clear();
      verifierHandlers.clear();
      currencyHandlers.clear();
    },
  };
}

/**
 * The in-process stand-in for the usage stream and its durable consumer: reports
 * wait in a queue (at most `retain`, oldest dropped) until a consumer takes
 * them, ids already accepted are refused as duplicates, and a report whose
 * handler rejects goes back to the front of the queue and is tried again a
 * second later.
 */
function createMemoryUsageQueue(retain: number) {
  const queue: UsageDelivery[] = [];
  const seen = new Set<string>();
  const handlers: Array<(delivery: UsageDelivery) => Promise<void>> = [];
  let next = 0;
  let pumping = false;
  let retry: ReturnType<typeof setTimeout> | undefined;

  async function pump(): Promise<void> {
    if (pumping) return;
    pumping = true;
    try {
      while (queue.length > 0 && handlers.length > 0) {
        const delivery = queue[0] as UsageDelivery;
        const handler = handlers[next++ % handlers.length] as (d: UsageDelivery) => Promise<void>;
        try {
          await handler(delivery);
          queue.shift();
        } catch {
          queue[0] = { ...delivery, deliveryCount: delivery.deliveryCount + 1 };
          retry ??= setTimeout(() => {
            retry = undefined;
            void pump();
          }, 1_000);
          retry.unref();
          return;
        }
      }
    } finally {
      pumping = false;
    }
  }

  return {
    publish(report: UsageReport, messageId: string): { duplicate: boolean } {
      if (seen.has(messageId)) return { duplicate: true };
      seen.add(messageId);
      if (seen.size > retain * 4) seen.delete(seen.values().next().value as string);
      queue.push({ messageId, report, deliveryCount: 1 });
      if (queue.length > retain) queue.shift();
      queueMicrotask(() => void pump());
      return { duplicate: false };
    },
    consume(handler: (delivery: UsageDelivery) => Promise<void>): { close(): Promise<void> } {
      handlers.push(handler);
      queueMicrotask(() => void pump());
      return {
        async close() {
          const index = handlers.indexOf(handler);
          if (index !== -1) handlers.splice(index, 1);
        },
      };
    },
    close(): void {
      clearTimeout(retry);
      handlers.length = 0;
    },
  };
}
