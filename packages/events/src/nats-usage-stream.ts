import { fromBinary } from "@bufbuild/protobuf";
import { UsageReportSchema } from "@latchkey/proto";
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  RetentionPolicy,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import type { KeyEventBusLogger } from "./nats-key-event-bus.js";
import { ensureFileStream } from "./nats-key-event-stream.js";
import { USAGE_CONSUMER, USAGE_STREAM, USAGE_SUBJECTS } from "./subjects.js";
import type { UsageDelivery } from "./usage-report-transport.js";

/** Retention of the usage stream; every limit has a default. */
export interface UsageStreamLimits {
  /** Reports not consumed within this long are dropped (default 24 h). */
  readonly maxAgeMs?: number;
  /** The stream keeps at most this many bytes (default 256 MiB). */
  readonly maxBytes?: number;
  /** Replicas in a NATS cluster (default 1). */
  readonly replicas?: number;
}

/**
 * JetStream's de-duplication window for usage reports: a verifier that lost a
 * publish ack re-publishes the same id within it and JetStream drops the copy.
 * Older copies are caught by the token-service's own record of batches.
 */
const USAGE_DUPLICATE_WINDOW_MS = 10 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Creates the stream `LATCHKEY_USAGE` or updates its limits: subjects
 * `latchkey.usage.>`, work-queue retention (a report is removed once the
 * token-service acknowledges it), a 10-minute duplicate window, file storage.
 *
 * @example
 * ```ts
 * await ensureUsageStream(jsm, { maxAgeMs: 86_400_000 });
 * ```
 */
export async function ensureUsageStream(
  jsm: JetStreamManager,
  limits: UsageStreamLimits = {},
): Promise<{ created: boolean }> {
  const maxAgeMs = limits.maxAgeMs ?? DAY_MS;
  const config = {
    subjects: [USAGE_SUBJECTS],
    max_age: nanos(maxAgeMs),
    max_bytes: limits.maxBytes ?? 256 * 1024 * 1024,
    duplicate_window: nanos(Math.min(USAGE_DUPLICATE_WINDOW_MS, maxAgeMs)),
    num_replicas: limits.replicas ?? 1,
    discard: DiscardPolicy.Old,
  };
  return ensureFileStream(jsm, USAGE_STREAM, RetentionPolicy.Workqueue, config);
}

/** The message id of a report: `<verifier_id>-<sequence>`. */
export function usageMessageId(report: { verifierId: string; sequence: bigint }): string {
  return `${report.verifierId}-${report.sequence}`;
}

/** What {@link consumeUsageReports} needs from the bus. */
export interface UsageConsumerDeps {
  readonly jetstream: () => Promise<JetStreamClient>;
  readonly jetstreamManager: () => Promise<JetStreamManager>;
  /** Whether the connection is up now; while it is not, the consumer waits (a wait `close` cuts short). */
  readonly isConnected: () => boolean;
  readonly logger: KeyEventBusLogger;
  readonly retryMs: number;
}

/**
 * Reads usage reports through the durable pull consumer `latchkey-token-service-usage`
 * (created if missing: explicit acks, 30 s ack wait), acking each once `handler`
 * resolves and asking for redelivery after a second when it rejects. Every
 * replica that calls this reads through the same consumer, so they share the
 * reports. Reconnects and a re-created stream are handled by starting over.
 *
 * @example
 * ```ts
 * const consumer = consumeUsageReports(deps, async ({ report }) => store(report));
 * await consumer.close();
 * ```
 */
export function consumeUsageReports(
  deps: UsageConsumerDeps,
  handler: (delivery: UsageDelivery) => Promise<void>,
): { close(): Promise<void> } {
  let closed = false;
  let messages: ConsumerMessages | undefined;
  let wake: (() => void) | undefined;

  async function pause(): Promise<void> {
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, deps.retryMs).unref();
    });
  }

  async function run(): Promise<void> {
    while (!closed) {
      try {
        if (!deps.isConnected()) {
          await pause();
          continue;
        }
        const jsm = await deps.jetstreamManager();
        await jsm.consumers.add(USAGE_STREAM, {
          durable_name: USAGE_CONSUMER,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(30_000),
          max_ack_pending: 1_000,
        });
        const consumer = await (await deps.jetstream()).consumers.get(USAGE_STREAM, USAGE_CONSUMER);
        if (closed) return;
        messages = await consumer.consume({ max_messages: 100 });
        for await (const message of messages) {
          let report: UsageDelivery["report"];
          try {
            report = fromBinary(UsageReportSchema, message.data);
          } catch (error) {
            deps.logger.warn({ err: error, subject: message.subject }, "undecodable usage report dropped");
            message.term();
            continue;
          }
          try {
            await handler({
              messageId: usageMessageId(report),
              report,
              deliveryCount: message.info.deliveryCount,
            });
            message.ack();
          } catch (error) {
            deps.logger.warn(
              { err: error, verifierId: report.verifierId },
              "usage report not stored; redelivering",
            );
            message.nak(deps.retryMs);
          }
        }
      } catch (error) {
        if (closed) return;
        deps.logger.warn({ err: error }, "usage consumer failed; retrying");
      }
      if (!closed) await pause();
    }
  }

  const running = run();
  return {
    async close() {
      closed = true;
      wake?.();
      await messages?.close();
      await running;
    },
  };
}
