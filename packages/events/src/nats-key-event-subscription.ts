import { fromBinary } from "@bufbuild/protobuf";
import { type KeyEvent, KeyEventSchema } from "@latchkey/proto";
import type { ConsumerMessages, JetStreamClient, JsMsg, StreamInfo } from "@nats-io/jetstream";
import type { KeyEventSubscriber, KeyEventSubscription } from "./key-event-bus.js";
import { KEY_EVENTS_STREAM, KEY_EVENTS_SUBJECTS } from "./subjects.js";

/** First pause between attempts to re-create a consumer (JetStream still starting, stream missing). */
const RESUBSCRIBE_RETRY_MS = 250;
/** Longest pause between those attempts. */
const RESUBSCRIBE_MAX_RETRY_MS = 5_000;
/**
 * The server sends the consumer's idle heartbeat this often while a pull waits; two missed mean
 * the consumer is gone (its NATS node died, while this connection, to another node, stayed up)
 * or the path is silently cut. The library's default (half of a 30 s pull) took ~30 s to notice.
 */
const CONSUMER_IDLE_HEARTBEAT_MS = 1_000;
/** Each pull request lasts this long before the next is sent. */
const CONSUMER_PULL_EXPIRES_MS = 5_000;

/** What a subscription needs from its bus. */
export interface SubscriptionContext {
  readonly logger: { warn(fields: object, message: string): void };
  /** Stream info, once connected. */
  streamInfo(): Promise<StreamInfo>;
  jetstream(): Promise<JetStreamClient>;
  /** True once the bus is closed. */
  isClosed(): boolean;
  /** Whether the connection is up now. */
  isConnected(): boolean;
}

/** A subscription the bus tells about connection changes. */
export interface NatsKeyEventSubscription extends KeyEventSubscription {
  /** The connection dropped: tell the subscriber. */
  disconnected(): void;
  /** The connection is back: check for a gap and resume after the last delivered event. */
  reconnected(): void;
}

/**
 * Opens a subscription: an ordered consumer filtered on the one subject
 * `latchkey.keys.>` (an array of filters needs NATS server 2.10; the client
 * refuses it on 2.9), starting at an explicit sequence. It tracks the last
 * sequence delivered; after a reconnect, a consumer that ended, or one the
 * library re-created, it checks the stream and resumes at `last + 1`, first
 * reporting a gap when the stream no longer holds that sequence (retention,
 * purge, or a re-created stream whose sequences restarted). It reports
 * "connected" again only once it has caught up with the stream.
 *
 * @example
 * ```ts
 * const subscription = await openNatsKeyEventSubscription(context, subscriber, afterSequence);
 * // on the connection's "reconnect" status:
 * subscription.reconnected();
 * ```
 */
export async function openNatsKeyEventSubscription(
  context: SubscriptionContext,
  subscriber: KeyEventSubscriber,
  afterSequence: number | undefined,
): Promise<NatsKeyEventSubscription> {
  const { logger } = context;
  /** Highest stream sequence delivered (or skipped past, after a gap). */
  let last = 0;
  /** Bumped on every (re)start; a consumer loop of an older generation stops. */
  let generation = 0;
  let messages: ConsumerMessages | undefined;
  /** After a re-subscription: report "connected" once delivery reaches this sequence. */
  let catchUpTo: number | undefined;
  let reportedConnected = false;
  let resubscribing = false;
  let resubscribeAgain = false;
  let closed = false;
  const open = () => !closed && !context.isClosed();

  function reportConnection(connected: boolean): void {
    if (closed || reportedConnected === connected) return;
    reportedConnected = connected;
    subscriber.onConnectionChange?.(connected);
  }

  /**
   * Moves `last` past events the stream no longer holds and tells the
   * subscriber. A stream whose last sequence is below ours was re-created
   * (sequences restart), which loses events just the same.
   */
  function checkGap(info: StreamInfo): void {
    const { first_seq: first, last_seq: lastInStream } = info.state;
    if (lastInStream < last || first > last + 1) {
      const firstAvailable = Math.max(first, 1);
      subscriber.onGap?.({ afterSequence: last, firstAvailable });
      last = firstAvailable - 1;
    }
  }

  /** Starts an ordered consumer at `last + 1` and feeds the subscriber, in order, until replaced. */
  async function startConsumer(): Promise<void> {
    const mine = ++generation;
    const previous = messages;
    messages = undefined;
    if (previous !== undefined) await previous.close().catch(() => {});
    const js = await context.jetstream();
    const consumer = await js.consumers.get(KEY_EVENTS_STREAM, {
      filter_subjects: KEY_EVENTS_SUBJECTS,
      opt_start_seq: last + 1,
    });
    // Without abort_on_missing_resource, a deleted stream leaves the library re-creating the
    // consumer forever in the background; with it, the iterator ends and we re-subscribe ourselves.
    const started = await consumer.consume({
      max_messages: 256,
      abort_on_missing_resource: true,
      idle_heartbeat: CONSUMER_IDLE_HEARTBEAT_MS,
      expires: CONSUMER_PULL_EXPIRES_MS,
    });
    const current = () => open() && mine === generation;
    if (!current()) {
      await started.close().catch(() => {});
      return;
    }
    messages = started;
    void (async () => {
      try {
        for await (const message of started) {
          if (!current()) break;
          await deliver(message);
        }
      } catch (error) {
        logger.warn({ err: error }, "key event consumer stopped");
      }
      if (current()) requestResubscribe();
    })();
    void (async () => {
      for await (const status of started.status()) {
        if (!current()) return;
        // The library re-created the consumer on its own: it resumes at the right sequence but
        // does not check for a gap, so take over and check. Missed heartbeats: the library would
        // ask for the lost consumer's info and back off for a whole pull between tries; a new
        // consumer, placed on a live node, is quicker.
        if (status.type === "ordered_consumer_recreated" || status.type === "heartbeats_missed") {
          requestResubscribe();
          return;
        }
      }
    })().catch(() => {});
  }

  async function deliver(message: JsMsg): Promise<void> {
    const sequence = message.seq;
    // An ordered consumer re-created after a reset can repeat what we already have.
    if (sequence <= last) return;
    if (sequence > last + 1) {
      // Our filter covers the whole stream, so a jump means the events in between were dropped.
      subscriber.onGap?.({ afterSequence: last, firstAvailable: sequence });
    }
    let event: KeyEvent;
    try {
      event = fromBinary(KeyEventSchema, message.data);
    } catch (error) {
      // An event we cannot read could be a revocation: treat it like a lost one.
      logger.warn({ err: error, sequence, subject: message.subject }, "undecodable key event");
      subscriber.onGap?.({ afterSequence: sequence, firstAvailable: sequence + 1 });
      last = sequence;
      return;
    }
    try {
      await subscriber.onEvent({ sequence, event, publishedAt: message.info.timestampNanos / 1e6 });
    } catch (error) {
      // The subscriber may not have applied it (a revocation, perhaps): report it as lost.
      logger.warn({ err: error, sequence }, "key event subscriber failed");
      subscriber.onGap?.({ afterSequence: sequence, firstAvailable: sequence + 1 });
    }
    last = sequence;
    if (catchUpTo !== undefined && last >= catchUpTo) {
      catchUpTo = undefined;
      reportConnection(true);
    }
  }

  /** Re-subscribes, one run at a time; a request during a run causes one more run. */
  function requestResubscribe(): void {
    // Not current until caught up again: a subscriber asking whether it is current (an outbox
    // currency request) must not pair an answer about the stream now with a position in an old one.
    reportConnection(false);
    if (resubscribing) {
      resubscribeAgain = true;
      return;
    }
    resubscribing = true;
    void (async () => {
      do {
        resubscribeAgain = false;
        await resubscribe();
      } while (resubscribeAgain && open());
      resubscribing = false;
    })();
  }

  /** Checks for a gap and resumes; retries with backoff until it works or closes. */
  async function resubscribe(): Promise<void> {
    for (let attempt = 0; open(); attempt++) {
      try {
        const info = await context.streamInfo();
        if (!open()) return;
        checkGap(info);
        await startConsumer();
        if (last >= info.state.last_seq) reportConnection(true);
        else catchUpTo = info.state.last_seq;
        return;
      } catch (error) {
        logger.warn({ err: error, attempt }, "re-subscribing to key events failed; retrying");
        const delay = Math.min(RESUBSCRIBE_MAX_RETRY_MS, RESUBSCRIBE_RETRY_MS * 2 ** Math.min(attempt, 5));
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }

  const info = await context.streamInfo();
  last = afterSequence ?? info.state.last_seq;
  checkGap(info);
  await startConsumer();
  reportConnection(context.isConnected());

  return {
    disconnected: () => reportConnection(false),
    reconnected: requestResubscribe,
    async close() {
      closed = true;
      generation += 1;
      await messages?.close().catch(() => {});
    },
  };
}
