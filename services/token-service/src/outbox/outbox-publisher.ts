import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { KeyEventBus } from "@latchkey/events";
import { KEY_EVENTS_STREAM, keyEventName, keyEventSubject } from "@latchkey/events";
import { type KeyEvent, KeyEventSchema } from "@latchkey/proto";
import { remoteParent, traceHeaderRecord, tracingEnabled } from "@latchkey/telemetry";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/tables.js";
import { lockPendingEvents, markPublished, type OutboxRow } from "./outbox.repository.js";

const tracer = trace.getTracer("latchkey-token-service");

/**
 * Publishes one event in a producer span of its own (a root: the publish
 * happens later than, and often on another replica from, the request that
 * wrote the row), linked to that request's trace when the row recorded one,
 * with the span's `traceparent` in the NATS message headers so a consumer can
 * continue it. The span names the subject, message id, event type, key id and
 * team id; never the token hash the event carries.
 */
async function tracedPublish(
  bus: KeyEventBus,
  event: KeyEvent,
  row: OutboxRow,
): Promise<{ sequence: number; duplicate: boolean }> {
  const writer =
    row.traceParent === null ? undefined : trace.getSpanContext(remoteParent(row.traceParent, undefined));
  const subject = keyEventSubject(event.teamId, event.type);
  const messageId = `outbox-${row.id}`;
  const span = tracer.startSpan(
    `send ${KEY_EVENTS_STREAM}`,
    {
      kind: SpanKind.PRODUCER,
      root: true,
      links: writer === undefined ? [] : [{ context: writer }],
      attributes: {
        "messaging.system": "nats",
        "messaging.operation.type": "send",
        "messaging.destination.name": subject,
        "messaging.message.id": messageId,
        "latchkey.event_type": keyEventName(event.type),
        "latchkey.key_id": event.keyId,
        "latchkey.team_id": event.teamId,
      },
    },
    ROOT_CONTEXT,
  );
  const ctx = trace.setSpan(ROOT_CONTEXT, span);
  try {
    const published = await bus.publish(event, messageId, traceHeaderRecord(ctx));
    span.setAttribute("latchkey.stream_sequence", published.sequence);
    if (published.duplicate) span.setAttribute("latchkey.duplicate", true);
    return published;
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).name ?? "error" });
    throw error;
  } finally {
    span.end();
  }
}

/** Options of {@link createOutboxPublisher}. */
export interface OutboxPublisherOptions {
  readonly db: Kysely<Database>;
  readonly bus: KeyEventBus;
  readonly logger: Logger;
  /** Fallback poll interval; the normal path is woken by NOTIFY or {@link OutboxPublisher.wake}. */
  readonly pollMs: number;
  /** Rows per transaction. */
  readonly batchSize?: number;
  /** Called after each event is accepted by the bus. */
  readonly onPublished?: (row: OutboxRow, sequence: number) => void;
}

/** Drains the outbox into the key event bus. */
export interface OutboxPublisher {
  /** Asks for a drain now (after a local commit, or on NOTIFY). */
  wake(): void;
  /** Drains until empty; resolves when done (used by tests and shutdown). */
  drain(): Promise<void>;
  /** Stops the loop after the current batch. */
  stop(): Promise<void>;
}

/**
 * Publishes outbox rows, oldest first, each with its outbox id as the message
 * id. Rows are locked `FOR UPDATE SKIP LOCKED` while they are sent, so several
 * replicas publish each row once; a crash between publish and commit makes the
 * next publisher send it again, and the bus drops the duplicate by message id.
 */
export function createOutboxPublisher(options: OutboxPublisherOptions): OutboxPublisher {
  const batchSize = options.batchSize ?? 100;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  let failures = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  const traced = tracingEnabled();

  async function publishBatch(): Promise<number> {
    return options.db.transaction().execute(async (trx) => {
      const rows = await lockPendingEvents(trx, batchSize);
      const published: { id: number; sequence: number }[] = [];
      for (const row of rows) {
        const event = create(KeyEventSchema, {
          id: BigInt(row.id),
          type: row.eventType,
          keyId: row.keyId,
          teamId: row.teamId,
          tokenHash: row.tokenHash,
          occurTime: timestampFromDate(row.createdAt),
          expireTime: row.expiresAt ? timestampFromDate(row.expiresAt) : undefined,
        });
        const { sequence } = traced
          ? await tracedPublish(options.bus, event, row)
          : await options.bus.publish(event, `outbox-${row.id}`);
        published.push({ id: row.id, sequence });
        options.onPublished?.(row, sequence);
      }
      // In the batch's transaction, as before: a crash before commit re-sends the batch, and the bus drops repeats by id.
      await markPublished(trx, published);
      return rows.length;
    });
  }

  async function loop(): Promise<void> {
    do {
      again = false;
      // While the bus is down a publish would only wait for it, holding a
      // transaction and its row locks (and stop()) for the bus's timeout. The
      // poll, or a wake() on reconnect, tries again.
      if (!options.bus.isConnected()) return;
      try {
        // After a failure, first a request that holds no row lock: a replica silently cut off from
        // NATS (its client still "connected") would otherwise lock rows again for a whole publish
        // timeout, rows another replica could publish meanwhile.
        if (failures > 0) await options.bus.lastSequence();
        while (!stopped && (await publishBatch()) === batchSize) {}
        failures = 0;
      } catch (error) {
        failures += 1;
        // Logged without payloads: rows carry hashes, never tokens.
        options.logger.warn({ err: error, failures }, "outbox publish failed; will retry");
        const delay = Math.min(options.pollMs, 50 * 2 ** Math.min(failures, 6));
        clearTimeout(retryTimer);
        retryTimer = setTimeout(() => wake(), delay);
        retryTimer.unref();
        return;
      }
    } while (again && !stopped);
  }

  function wake(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = loop().finally(() => {
      running = undefined;
    });
  }

  const poll = setInterval(wake, options.pollMs);
  poll.unref();
  wake();

  return {
    wake,
    async drain() {
      wake();
      while (running) await running;
    },
    async stop() {
      stopped = true;
      clearInterval(poll);
      clearTimeout(retryTimer);
      await running;
    },
  };
}
