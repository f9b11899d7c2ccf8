import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { KeyEventBus, KeyEventSubscription } from "@latchkey/events";
import { type KeyEvent, VerifierAckSchema, VerifierHeartbeatSchema } from "@latchkey/proto";
import type { VerifierMetrics } from "./verifier-metrics.js";

/** Longest pause between attempts to subscribe. */
const MAX_RETRY_MS = 5_000;

/** Options of {@link createKeyEventFollower}. */
export interface KeyEventFollowerOptions {
  readonly bus: KeyEventBus;
  readonly verifierId: string;
  /** Sent with heartbeats for operators (service or pod name). */
  readonly label: string;
  /** Acks of applied events are sent at most this long after the first of a batch. */
  readonly ackBatchMs: number;
  /** Interval of heartbeats, and of the stream position probe that proves the feed current. */
  readonly heartbeatIntervalMs: number;
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
   * A time (ms since the epoch) before which every published event is known to
   * be applied; -Infinity until the first proof. Advanced by probing the
   * stream's last sequence each heartbeat and seeing it applied.
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
 * at most `ackBatchMs`, sends a heartbeat every `heartbeatIntervalMs`, and at
 * each heartbeat probes the stream's last sequence: once that sequence is
 * applied, every event published before the probe was sent has reached the
 * cache. That time ({@link KeyEventFollower.coveredAt}) is what bounded
 * staleness measures against, so a connection that is silently dead (no TCP
 * reset) is caught as surely as a clean disconnect.
 *
 * @example
 * ```ts
 * const follower = createKeyEventFollower({ bus, verifierId, label: "sidecar", ackBatchMs: 2,
 *   heartbeatIntervalMs: 1000, retryMs: 250, metrics, apply: evict, reset: () => cache.clear() });
 * await follower.ready;
 * ```
 */
export function createKeyEventFollower(options: KeyEventFollowerOptions): KeyEventFollower {
  const { bus, metrics } = options;
  let applied = 0;
  let covered = Number.NEGATIVE_INFINITY;
  let connected = false;
  let subscription: KeyEventSubscription | undefined;
  let closed = false;
  let probing = false;
  /** A probe answered while events up to `sequence` were still on their way. */
  let pendingProof: { sentAt: number; sequence: number } | undefined;
  let ackIds: bigint[] = [];
  let ackTimer: ReturnType<typeof setTimeout> | undefined;

  function setConnected(value: boolean): void {
    connected = value;
    metrics.natsConnected.set(value ? 1 : 0);
    if (value) void probe();
  }

  function proveUpTo(sentAt: number, sequence: number): void {
    if (applied >= sequence) {
      if (sentAt > covered) covered = sentAt;
      pendingProof = undefined;
    } else {
      pendingProof = { sentAt, sequence };
    }
  }

  async function probe(): Promise<void> {
    if (probing || closed || subscription === undefined) return;
    probing = true;
    const sentAt = Date.now();
    try {
      const last = await bus.lastSequence();
      metrics.lag.set(Math.max(0, last - applied));
      // A stream shorter than what we applied was re-created: that proves nothing until the bus
      // has reported the gap and we read the new stream.
      if (last >= applied) proveUpTo(sentAt, last);
    } catch {
      // Unreachable: coverage simply does not advance, and bounded staleness takes over.
    } finally {
      probing = false;
    }
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
    void probe();
  }, options.heartbeatIntervalMs);
  heartbeat.unref();

  async function subscribe(): Promise<void> {
    for (let attempt = 0; !closed; attempt++) {
      try {
        const last = await bus.lastSequence();
        if (closed) return;
        applied = last;
        metrics.appliedSequence.set(applied);
        // Anything cached so far was verified before the feed covered it.
        options.reset();
        const opened = await bus.subscribe(
          {
            onEvent: ({ sequence, event }) => {
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
              if (pendingProof !== undefined) proveUpTo(pendingProof.sentAt, pendingProof.sequence);
              ackIds.push(event.id);
              ackTimer ??= setTimeout(flushAcks, options.ackBatchMs);
            },
            onGap: ({ firstAvailable }) => {
              options.reset();
              // Where delivery goes on; lower than before when the stream was re-created.
              applied = firstAvailable - 1;
              metrics.appliedSequence.set(applied);
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
        void probe();
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
    coveredAt: () => covered,
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
