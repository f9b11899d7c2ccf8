import type { OutboxCurrency, OutboxCurrencyRequest } from "@latchkey/proto";

/**
 * A verifier's question, as a token-service replica receives it, with the one
 * way to answer it. A replica that cannot prove the answer never calls
 * `respond`; the verifier's request then times out.
 */
export interface OutboxCurrencyQuestion {
  readonly request: OutboxCurrencyRequest;
  /** Sends the answer to the verifier that asked (at most once; later calls do nothing). */
  respond(answer: OutboxCurrency): void;
}

/**
 * Carries the outbox currency exchange: a verifier asks every token-service
 * replica whether the outbox has been published up to the moment it asked
 * (core NATS request/reply on `latchkey.verifiers.currency.<verifier_id>`, or
 * in process); the first replica that can prove it answers. Part of
 * {@link KeyEventBus}.
 */
export interface OutboxCurrencyTransport {
  /**
   * Asks every replica listening and resolves with the first answer. Rejects
   * after `timeoutMs`, at once when no replica listens, and while the bus is
   * not connected.
   */
  requestOutboxCurrency(request: OutboxCurrencyRequest, timeoutMs: number): Promise<OutboxCurrency>;
  /** Hears every verifier's question (the token-service's side); `handler` answers when it can. */
  onOutboxCurrencyRequest(handler: (question: OutboxCurrencyQuestion) => void): { close(): Promise<void> };
}
