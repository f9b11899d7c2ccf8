/** setTimeout's largest delay; a later expiry re-arms the timer when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One timer for the earliest expiry among cached keys. */
export interface ExpiryWatch {
  /** An entry expiring at `at` (ms since the epoch) was cached. */
  added(at: number): void;
  close(): void;
}

/**
 * Watches the expiry times in `expiring` (hash → ms since the epoch) with a
 * single timer set for the earliest, and calls `onDue` for each hash whose time
 * has come, so a key that expires while cached is reported even if no request
 * asks for it. Scans the map only when the timer fires or an earlier expiry
 * arrives; keys with an expiry are expected to be a minority.
 *
 * @example
 * ```ts
 * const watch = createExpiryWatch(cache.expiring, (hash) => expire(hash));
 * cache.set(entry);
 * watch.added(entry.keyExpiresAt);
 * ```
 */
export function createExpiryWatch(
  expiring: ReadonlyMap<string, number>,
  onDue: (hash: string) => void,
): ExpiryWatch {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let armedFor = Number.POSITIVE_INFINITY;
  let closed = false;

  function arm(): void {
    let next = Number.POSITIVE_INFINITY;
    for (const at of expiring.values()) if (at < next) next = at;
    if (next === armedFor) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    armedFor = next;
    if (!Number.isFinite(next) || closed) return;
    timer = setTimeout(fire, Math.min(Math.max(0, next - Date.now()), MAX_TIMER_MS));
    timer.unref();
  }

  function fire(): void {
    timer = undefined;
    armedFor = Number.POSITIVE_INFINITY;
    const now = Date.now();
    for (const [hash, at] of [...expiring]) if (at <= now) onDue(hash);
    arm();
  }

  return {
    added(at) {
      if (Number.isFinite(at) && at < armedFor) arm();
    },
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
