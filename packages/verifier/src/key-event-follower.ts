import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createOutboxCoverage, type KeyEventBus, type KeyEventSubscription } from "@latchkey/events";
import {
  type KeyEvent,
  OutboxCurrencyRequestSchema,
  VerifierAckSchema,
  VerifierHeartbeatSchema,
} from "@latchkey/proto";
import type { VerifierMetrics } from "./verifier-metrics.js";

/** Longest pause between attempts to subscribe. */
const MAX_RETRY_MS = 5_000;
/** Outbox currency requests awaiting an answer at most; beyond, a heartbeat skips asking. */
const MAX_ASKING = 4;

/** Options of {@link createKeyEventFollower}. */
export interface KeyEventFollowerOptions {
  readonly bus: KeyEventBus;
  readonly verifierId: string;
  /** Sent with heartbeats for operators (service or pod name). */
  readonly label: string;
  /** Acks of applied events are sent at most this long after the first of a batch. */
  readonly ackBatchMs: number;
  /** Interval of heartbeats, and of the outbox currency requests that prove the feed current. */
  readonly heartbeatIntervalMs: number;
  /** How long an outbox currency request waits for an answer (an older answer proves too little). */
  readonly currencyTimeoutMs: number;
  /** First pause between attempts to subscribe while the bus is unreachable (doubling up to 5 s). */
  readonly retryMs: number;
  readonly metrics: VerifierMetrics;
  /** Applies one event to the cache; synchronous, so the ack that follows is true. */
  apply(event: KeyEvent): void;
  /** Forgets everything cached: events were lost, or the subscription is (re)starting. */
  reset(): void;
  /** Called when an event could not be applied; for logging. */
  onError?(error: unknown): void;
}

/** A running subscription to key events, with acks, heartbeats and a proof of currency. */
export interface KeyEventFollower {
  /** Resolves once subscribed (or closed). */
  readonly ready: Promise<void>;
  /** Highest stream sequence applied. */
  appliedSequence(): number;
  /**
   * A time (ms since the epoch, this process's clock) before which every
   * committed key change is known to be applied; -Infinity until the first
   * proof. Advanced each heartbeat by an outbox currency request: a
   * token-service replica answers that everything committed before the request
   * is in the stream up to some sequence, and once that sequence is applied,
   * the time the request was sent is covered.
   */
  coveredAt(): number;
  /** Whether the subscription is connected, as the bus reports it. */
  isConnected(): boolean;
  /** Flushes pending acks and stops. */
  close(): Promise<void>;
}

/**
 * Follows the key event stream for a verifier: subscribes from the stream's
 * current end, applies each event, acknowledges applied events in batches of
 * at most `ackBatchMs`, and every `heartbeatIntervalMs` sends a heartbeat and
 * asks the token-service replicas whether the outbox is published (an outbox
 * currency request). The first answer names a stream sequence; once it is
 * applied, every key change committed before the request was sent has reached
 * the cache. That time ({@link KeyEventFollower.coveredAt}) is what bounded
 * staleness measures against. It stops advancing whenever any link of the
 * chain fails: this verifier cut off from NATS (cleanly or silently), every
 * token-service replica cut off from NATS or PostgreSQL, or revocations
 * waiting in the outbox.
 *
 * @example
 * ```ts
 * const follower = createKeyEventFollower({ bus, verifierId, label: "sidecar", ackBatchMs: 2,
 *   heartbeatIntervalMs: 1000, currencyTimeoutMs: 2000, retryMs: 250, metrics,
 *   apply: evict, reset: () => cache.clear() });
 * await follower.ready;
 * ```
 */
export function createKeyEventFollower(options: KeyEventFollowerOptions): KeyEventFollower {
  const { bus, metrics } = options;
  const coverage = createOutboxCoverage();
  let applied = 0;
  let connected = false;
  let subscription: KeyEventSubscription | undefined;
  let closed = false;
  let asking = 0;
  let ackIds: bigint[] = [];
  let ackTimer: ReturnType<typeof setTimeout> | undefined;

  /** The stream position moved without the events in between (start, gap): earlier proofs are void. */
  function moveTo(sequence: number): void {
    applied = sequence;
    metrics.appliedSequence.set(sequence);
    coverage.reset();
    coverage.applied(sequence);
  }

  function setConnected(value: boolean): void {
    connected = value;
    metrics.natsConnected.set(value ? 1 : 0);
    // An answer to a request sent over the connection that just changed may name a position in a
    // stream this subscription no longer follows.
    coverage.reset();
    if (value) askCurrency();
  }

  /** Asks the token-service replicas for an outbox currency proof; the first answer is offered. */
  function askCurrency(): void {
    if (closed || subscription === undefined || !connected || asking >= MAX_ASKING) return;
    asking += 1;
    const ticket = coverage.ticket();
    const sentAt = Date.now();
    bus
      .requestOutboxCurrency(
        create(OutboxCurrencyRequestSchema, { verifierId: options.verifierId }),
        options.currencyTimeoutMs,
      )
      .then(
        (answer) => {
          const through = Number(answer.publishedThroughSequence);
          metrics.lag.set(Math.max(0, through - applied));
          coverage.offer(ticket, sentAt, through);
        },
        // No answer (no replica can prove it, or none is reachable): the proof does not advance.
        () => {},
      )
      .finally(() => {
        asking -= 1;
      });
  }

  function flushAcks(): void {
    if (ackTimer !== undefined) clearTimeout(ackTimer);
    ackTimer = undefined;
    if (ackIds.length === 0) return;
    const eventIds = ackIds;
    ackIds = [];
    bus.sendAck(
      create(VerifierAckSchema, {
        verifierId: options.verifierId,
        eventIds,
        appliedSequence: BigInt(applied),
      }),
    );
  }

  function sendHeartbeat(): void {
    bus.sendHeartbeat(
      create(VerifierHeartbeatSchema, {
        verifierId: options.verifierId,
        appliedSequence: BigInt(applied),
        interval: durationFromMs(options.heartbeatIntervalMs),
        label: options.label,
      }),
    );
  }

  const heartbeat = setInterval(() => {
    if (subscription === undefined) return;
    sendHeartbeat();
    askCurrency();
  }, options.heartbeatIntervalMs);
  heartbeat.unref();

  async function subscribe(): Promise<void> {
    for (let attempt = 0; !closed; attempt++) {
      try {
        const last = await bus.lastSequence();
        if (closed) return;
        moveTo(last);
        // Anything cached so far was verified before the feed covered it.
        options.reset();
        const opened = await bus.subscribe(
          {
            onEvent: ({ sequence, event, publishedAt }) => {
              try {
                options.apply(event);
              } catch (error) {
                // Reset first: a throwing onError must not leave the entry cached.
                options.reset();
                try {
                  options.onError?.(error);
                } catch {}
              }
              applied = sequence;
              metrics.appliedSequence.set(sequence);
              metrics.revocationLag.observe(Math.max(0, Date.now() - publishedAt) / 1000);
              coverage.applied(sequence);
              ackIds.push(event.id);
              ackTimer ??= setTimeout(flushAcks, options.ackBatchMs);
            },
            onGap: ({ firstAvailable }) => {
              options.reset();
              // Where delivery goes on; lower than before when the stream was re-created.
              moveTo(firstAvailable - 1);
            },
            onConnectionChange: setConnected,
          },
          { afterSequence: last },
        );
        if (closed) {
          await opened.close();
          return;
        }
        subscription = opened;
        sendHeartbeat();
        askCurrency();
        return;
      } catch (error) {
        options.onError?.(error);
        const delay = Math.min(MAX_RETRY_MS, options.retryMs * 2 ** Math.min(attempt, 5));
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }

  const ready = subscribe();

  return {
    ready,
    appliedSequence: () => applied,
    coveredAt: coverage.coveredAt,
    isConnected: () => connected && subscription !== undefined,
    async close() {
      closed = true;
      clearInterval(heartbeat);
      flushAcks();
      metrics.natsConnected.set(0);
      await subscription?.close();
      subscription = undefined;
    },
  };
}
