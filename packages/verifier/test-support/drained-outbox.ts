import { create } from "@bufbuild/protobuf";
import type { KeyEventBus } from "@latchkey/events";
import { OutboxCurrencySchema } from "@latchkey/proto";

/**
 * Answers outbox currency questions on `bus` the way a token-service replica
 * whose outbox is empty would: everything committed is in the stream up to its
 * last sequence. True of a stand-in token-service whose key changes are
 * published by the test itself, at once. Returns the way to stop answering
 * (a token-service cut off from NATS or PostgreSQL stays silent).
 *
 * @example
 * ```ts
 * const stop = answerOutboxCurrency(bus);
 * stop(); // verifiers' proofs of currency stop advancing
 * ```
 */
export function answerOutboxCurrency(bus: KeyEventBus): () => void {
  const subscription = bus.onOutboxCurrencyRequest((question) => {
    void bus
      .lastSequence()
      .then((last) =>
        question.respond(
          create(OutboxCurrencySchema, { publishedThroughSequence: BigInt(last), replicaId: "ts_stub" }),
        ),
      );
  });
  return () => void subscription.close();
}
