import { Counter, type Registry } from "prom-client";

/** Options of {@link registerScrapedCounter}. */
export interface ScrapedCounterOptions<K extends string | number> {
  readonly name: string;
  readonly help: string;
  /** The one label, e.g. `result`. */
  readonly labelName: string;
  /** Every value the label can take; each is exported from the first scrape, at 0 until counted. */
  readonly keys: readonly K[];
  /** The label value shown for a key. */
  readonly labelOf: (key: K) => string;
}

/**
 * A counter with one label for the Verify path: the caller bumps a plain
 * number (`counts[key] += 1`) and prom-client is told the difference at
 * scrape time, because its own `inc` hashes the label set on every call.
 *
 * @returns the counts to bump, one per key.
 * @example
 * ```ts
 * const counts = registerScrapedCounter(registry, { name, help, labelName: "outcome", keys: ["hit", "miss"], labelOf: (k) => k });
 * counts.hit += 1;
 * ```
 */
export function registerScrapedCounter<K extends string | number>(
  registry: Registry,
  options: ScrapedCounterOptions<K>,
): Record<K, number> {
  const counts = {} as Record<K, number>;
  const reported = {} as Record<K, number>;
  for (const key of options.keys) {
    counts[key] = 0;
    reported[key] = 0;
  }
  new Counter({
    name: options.name,
    help: options.help,
    labelNames: [options.labelName],
    registers: [registry],
    collect() {
      for (const key of options.keys) {
        this.labels(options.labelOf(key)).inc(counts[key] - reported[key]);
        reported[key] = counts[key];
      }
    },
  });
  return counts;
}
