import { vi } from "vitest";

/** How {@link waitUntil} and {@link eventually} poll. */
export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  readonly timeoutMs?: number;
  /** Check this often (default 10 ms). */
  readonly intervalMs?: number;
  /** Names the condition in the timeout's message. */
  readonly what?: string;
}

/**
 * Reads until `done(value)` holds and returns that value: the tests' one poller,
 * on `vi.waitFor`. The timeout's message shows the last value read.
 *
 * @example
 * ```ts
 * const [row] = await eventually(() => readOutbox(db), (rows) => rows[0]?.published_at !== null);
 * ```
 */
export function eventually<T>(
  read: () => T | Promise<T>,
  done: (value: T) => boolean,
  options: WaitOptions = {},
): Promise<T> {
  return vi.waitFor(
    async () => {
      const value = await read();
      if (!done(value)) {
        throw new Error(`${options.what ?? "condition"} not met; last value: ${describe(value)}`);
      }
      return value;
    },
    { timeout: options.timeoutMs ?? 10_000, interval: options.intervalMs ?? 10 },
  );
}

/**
 * Waits until `check()` is true.
 *
 * @example
 * ```ts
 * await waitUntil(() => sidecar.liveConnectionCount() === 0, { what: "streams closed" });
 * ```
 */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  options: WaitOptions = {},
): Promise<void> {
  await eventually(check, (value) => value, options);
}

function describe(value: unknown): string {
  try {
    return (
      JSON.stringify(value, (_key, inner: unknown) => (typeof inner === "bigint" ? `${inner}n` : inner)) ??
      String(value)
    );
  } catch {
    return String(value);
  }
}
