import type { KeyEvent, VerifierAck, VerifierHeartbeat } from "@latchkey/proto";
import type { OutboxCurrencyTransport } from "./outbox-currency-transport.js";
import type { UsageReportTransport } from "./usage-report-transport.js";

/** A key event as delivered to a subscriber, with its position in the stream. */
export interface KeyEventDelivery {
  /** The stream sequence (JetStream sequence, or the in-process bus's counter). Starts at 1. */
  readonly sequence: number;
  /** The event. */
  readonly event: KeyEvent;
  /**
   * When the bus stored it (ms since the epoch): JetStream's timestamp, on the
   * NATS server's clock, or the in-process bus's. For the revocation lag metric
   * only; nothing that decides access compares it with another clock.
   */
  readonly publishedAt: number;
}

/** Callbacks of a key event subscription. */
export interface KeyEventSubscriber {
  /** Called once per event, in stream order. May be async; the next event waits for it. */
  onEvent(delivery: KeyEventDelivery): void | Promise<void>;
  /**
   * Called when events between the subscriber's last sequence and the next
   * available one can no longer be delivered (the stream dropped them). The
   * subscriber must treat everything it cached as unconfirmed.
   */
  onGap?(info: { afterSequence: number; firstAvailable: number }): void;
  /** Called when the connection to the bus is lost or regained. */
  onConnectionChange?(connected: boolean): void;
}

/** A live subscription. */
export interface KeyEventSubscription {
  /** Stops delivery. */
  close(): Promise<void>;
}

/**
 * Carries key events from the token-service's outbox to every verifier, and
 * verifier acks, heartbeats, usage reports and outbox currency questions back.
 * Implemented by the in-process bus (the embedded default) and by NATS
 * JetStream.
 */
export interface KeyEventBus extends UsageReportTransport, OutboxCurrencyTransport {
  /**
   * Publishes one event. `messageId` de-duplicates re-publication of the same
   * outbox row. `headers` go with the message where the bus has headers
   * (NATS: the W3C `traceparent` of the publish span). Resolves once the bus
   * has durably accepted it.
   */
  publish(
    event: KeyEvent,
    messageId: string,
    headers?: Readonly<Record<string, string>>,
  ): Promise<{ sequence: number; duplicate: boolean }>;
  /**
   * Subscribes to events with a sequence greater than `afterSequence`. When
   * `afterSequence` is undefined, delivery starts with the next event
   * published (a verifier that has just started has nothing cached).
   */
  subscribe(
    subscriber: KeyEventSubscriber,
    options?: { afterSequence?: number },
  ): Promise<KeyEventSubscription>;
  /** The last sequence in the stream (0 when empty). */
  lastSequence(): Promise<number>;
  /** Sends a verifier's ack (fire and forget). */
  sendAck(ack: VerifierAck): void;
  /** Sends a verifier's heartbeat (fire and forget). */
  sendHeartbeat(heartbeat: VerifierHeartbeat): void;
  /** Receives every verifier's acks and heartbeats (the token-service's side). */
  onVerifierMessage(handler: (message: VerifierMessage) => void): KeyEventSubscription;
  /** Whether the bus is connected now. */
  isConnected(): boolean;
  /** Closes the bus and every subscription. */
  close(): Promise<void>;
}

/** An ack or heartbeat received from a verifier. */
export type VerifierMessage =
  | { kind: "ack"; ack: VerifierAck }
  | { kind: "heartbeat"; heartbeat: VerifierHeartbeat };
