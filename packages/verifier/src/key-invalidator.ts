import { type KeyEvent, KeyEventType } from "@latchkey/proto";
import type { CacheEntry } from "./cache-entry.js";
import { createExpiryWatch } from "./expiry-watch.js";
import type { SingleFlight } from "./single-flight.js";
import { hashCacheKey, type VerifierCache } from "./verifier-cache.js";
import type { VerifierMetrics } from "./verifier-metrics.js";
import type { KeyInvalidation } from "./verify-outcome.js";

/** Options of {@link createKeyInvalidator}. */
export interface KeyInvalidatorOptions {
  readonly cache: VerifierCache;
  /** Lookups in flight; an invalidation keeps their answers out of the cache. */
  readonly flights: Pick<SingleFlight<unknown>, "invalidate">;
  readonly metrics: VerifierMetrics;
  /** Told about a listener that threw. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Where every change to what a verifier knows is applied: a key event, a gap
 * in the feed, a cached key seen to expire. Each one evicts from the cache,
 * stops lookups in flight from caching what they read before it, and tells
 * the `onInvalidate` listeners.
 */
export interface KeyInvalidator {
  /** Applies one key event: evicts by token hash and by key id. Synchronous, so the ack that follows is true. */
  apply(event: KeyEvent): void;
  /** Forgets everything: events were lost, or the subscription is (re)starting. */
  reset(): void;
  /** A key seen to pass its expiry: drops it and tells listeners, as an EXPIRED event would. */
  expire(entry: CacheEntry): void;
  /** Watches the expiry of an entry just cached, so it is reported even if no request asks for it. */
  cached(entry: CacheEntry): void;
  /** Calls `listener` for each invalidation; returns an unsubscribe. */
  onInvalidate(listener: (invalidation: KeyInvalidation) => void): () => void;
  /** Stops the expiry timer. */
  close(): void;
}

/**
 * Creates the verifier's invalidation step, the one place an event, a gap or
 * an expiry reaches the cache.
 *
 * @example
 * ```ts
 * const invalidator = createKeyInvalidator({ cache, flights, metrics });
 * createKeyEventFollower({ ...followerOptions, apply: invalidator.apply, reset: invalidator.reset });
 * invalidator.onInvalidate(({ keyId }) => closeStreamsOf(keyId));
 * ```
 */
export function createKeyInvalidator(options: KeyInvalidatorOptions): KeyInvalidator {
  const { cache, flights, metrics } = options;
  const listeners = new Set<(invalidation: KeyInvalidation) => void>();
  const expiryWatch = createExpiryWatch(cache.expiring, (hash) => {
    const entry = cache.get(hash);
    if (entry !== undefined) expire(entry);
    else cache.delete(hash);
  });

  function notify(invalidation: KeyInvalidation): void {
    for (const listener of listeners) {
      try {
        listener(invalidation);
      } catch (error) {
        options.onError?.(error);
      }
    }
  }

  function expire(entry: CacheEntry): void {
    cache.delete(entry.hash);
    metrics.evictions.inc({ reason: "expiry" });
    flights.invalidate({ hash: entry.hash });
    const key = entry.key;
    if (key !== undefined) {
      notify({
        keyId: key.id,
        teamId: key.teamId,
        tokenHash: Buffer.from(entry.hash, "base64"),
        type: KeyEventType.EXPIRED,
      });
    }
  }

  return {
    apply(event) {
      const hash = event.tokenHash.length > 0 ? hashCacheKey(event.tokenHash) : undefined;
      let removed = hash !== undefined && cache.delete(hash) !== undefined ? 1 : 0;
      if (event.keyId !== "") removed += cache.deleteKey(event.keyId);
      if (removed > 0) metrics.evictions.inc({ reason: "event" }, removed);
      flights.invalidate({ ...(hash !== undefined ? { hash } : {}), keyId: event.keyId });
      notify({ keyId: event.keyId, teamId: event.teamId, tokenHash: event.tokenHash, type: event.type });
    },
    reset() {
      const removed = cache.clear();
      if (removed > 0) metrics.evictions.inc({ reason: "gap" }, removed);
      flights.invalidate({});
    },
    expire,
    cached(entry) {
      expiryWatch.added(entry.keyExpiresAt);
    },
    onInvalidate(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    close() {
      expiryWatch.close();
    },
  };
}
