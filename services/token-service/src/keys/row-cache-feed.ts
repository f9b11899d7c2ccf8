import type { KeyEventBus, KeyEventSubscription, OutboxCoverage } from "@latchkey/events";
import type { Logger } from "pino";
import { type KeyRowCache, tokenHashHex } from "./key-row-cache.js";

/** Options of {@link createRowCacheFeed}. */
export interface RowCacheFeedOptions {
  readonly bus: KeyEventBus;
  readonly cache: KeyRowCache;
  /**
   * The row cache's proof of currency: told every stream position the cache
   * reaches, and reset when the position it knows may no longer hold.
   */
  readonly coverage: OutboxCoverage;
  readonly logger: Logger;
  /** Called each time the subscription (re)connects, after the cache is emptied. */
  readonly onConnected?: () => void;
}

/** This replica's own key event subscription, which keeps its row cache honest. */
export interface RowCacheFeed {
  /** True while key events reach the cache; until then (and while down) the cache must be bypassed. */
  connected(): boolean;
  /** Subscribes now, from the stream's current end; rejects when it cannot. */
  subscribe(): Promise<void>;
  /**
   * Subscribes in the background: runs `prepare` (wait for the bus, create
   * the stream; it is told when the feed closes) then
   * {@link RowCacheFeed.subscribe}, retrying with backoff until it succeeds or
   * the feed is closed.
   */
  subscribeWhenReady(prepare: (closed: AbortSignal) => Promise<void>): void;
  /** Stops retrying and closes the subscription. */
  close(): Promise<void>;
}

/**
 * Feeds key events, local or from other replicas, into the row cache: each
 * evicts its key and moves the cache's applied sequence; a gap or a
 * (re)connect empties it. It starts at the stream's end as it is when
 * subscribing, so from then on the cache reflects every event up to that
 * point (their changes committed before they were published) and each later
 * one as it arrives.
 *
 * @example
 * ```ts
 * const feed = createRowCacheFeed({ bus, cache, logger, onConnected: () => publisher.wake() });
 * await feed.subscribe();
 * // …
 * await feed.close();
 * ```
 */
export function createRowCacheFeed(options: RowCacheFeedOptions): RowCacheFeed {
  const { bus, cache, coverage, logger } = options;
  /** Moves the cache to `sequence` after it forgot what it held (start, gap). */
  function restart(sequence: number): void {
    cache.clear(sequence);
    coverage.reset();
    coverage.applied(sequence);
  }
  const closed = new AbortController();
  // False until the subscription is up: until then the row cache is bypassed.
  let connected = false;
  let subscription: KeyEventSubscription | undefined;

  async function subscribe(): Promise<void> {
    // The cache is emptied when the subscription reports itself connected,
    // after this read, so it reflects every event up to `start`.
    const start = await bus.lastSequence();
    if (closed.signal.aborted) return;
    restart(start);
    subscription = await bus.subscribe(
      {
        onEvent: ({ sequence, event }) => {
          cache.applyEvent(sequence, event.keyId, tokenHashHex(event.tokenHash));
          coverage.applied(sequence);
        },
        onGap: ({ firstAvailable }) => restart(firstAvailable - 1),
        onConnectionChange: (up) => {
          connected = up;
          // A proof under way was read against the connection that just changed.
          coverage.reset();
          if (up) {
            cache.clear();
            options.onConnected?.();
          }
        },
      },
      { afterSequence: start },
    );
    if (closed.signal.aborted) await subscription.close();
  }

  async function subscribeWhenReady(prepare: (closed: AbortSignal) => Promise<void>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await prepare(closed.signal);
        if (closed.signal.aborted) return;
        await subscribe();
        return;
      } catch (error) {
        if (closed.signal.aborted) return;
        logger.warn({ err: error }, "cannot set up the key event stream or subscribe to it; retrying");
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(5_000, 250 * 2 ** Math.min(attempt, 5))).unref(),
        );
        if (closed.signal.aborted) return;
      }
    }
  }

  return {
    connected: () => connected,
    subscribe,
    subscribeWhenReady: (prepare) => void subscribeWhenReady(prepare),
    async close() {
      closed.abort();
      await subscription?.close();
    },
  };
}
