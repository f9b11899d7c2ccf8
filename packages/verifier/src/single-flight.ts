/** Tells a lookup whether what it read may have changed since it started. */
export type InvalidatedSince = (keyId: string | undefined) => boolean;

/** Concurrent lookups of one token sharing one RPC, aware of invalidations that arrive meanwhile. */
export interface SingleFlight<T> {
  /**
   * Joins the lookup in flight for `hash`, or starts one. `start` gets a
   * function that says whether an invalidation for this hash, the given key
   * id, or everything arrived after the lookup started: its answer may then
   * predate the change and must not be cached.
   */
  run(
    hash: string,
    start: (invalidatedSince: InvalidatedSince) => Promise<T>,
  ): { promise: Promise<T>; joined: boolean };
  /**
   * Records a change to one token (`hash`), one key (`keyId`), or, with neither,
   * everything. Lookups it may affect stop being joinable: a caller arriving
   * after the change starts a fresh lookup instead of sharing an answer read
   * before it.
   */
  invalidate(target: { hash?: string; keyId?: string }): void;
}

interface Invalidation {
  readonly n: number;
  readonly hash: string | undefined;
  readonly keyId: string | undefined;
}

/**
 * Creates a {@link SingleFlight}. Invalidations are remembered only while
 * lookups are in flight, so the log stays as small as the number of key
 * events that arrive during one RPC.
 *
 * @example
 * ```ts
 * const flights = createSingleFlight<Answer>();
 * const { promise } = flights.run(hash, async (invalidatedSince) => {
 *   const answer = await rpc();
 *   if (!invalidatedSince(answer.keyId)) cache.set(hash, answer);
 *   return answer;
 * });
 * ```
 */
export function createSingleFlight<T>(): SingleFlight<T> {
  // Joinable lookups by hash; `running` also counts ones an invalidation detached.
  const inflight = new Map<string, Promise<T>>();
  let running = 0;
  let log: Invalidation[] = [];
  let count = 0;

  return {
    run(hash, start) {
      const existing = inflight.get(hash);
      if (existing !== undefined) return { promise: existing, joined: true };
      const since = count;
      const invalidatedSince: InvalidatedSince = (keyId) => {
        if (count === since) return false;
        for (const entry of log) {
          if (entry.n <= since) continue;
          if (entry.hash === undefined && entry.keyId === undefined) return true;
          if (entry.hash === hash || (keyId !== undefined && entry.keyId === keyId)) return true;
        }
        return false;
      };
      running += 1;
      const promise: Promise<T> = start(invalidatedSince).finally(() => {
        if (inflight.get(hash) === promise) inflight.delete(hash);
        running -= 1;
        if (running === 0) log = [];
      });
      inflight.set(hash, promise);
      return { promise, joined: false };
    },
    invalidate({ hash, keyId }) {
      count += 1;
      if (running > 0) log.push({ n: count, hash, keyId });
      // A token's hash names its only key; without one, any lookup may be for the key.
      if (hash !== undefined) inflight.delete(hash);
      else inflight.clear();
    },
  };
}
