// Reads a running token-service's /metrics the way Prometheus does: over HTTP,
// as text, so tests assert on what a scrape shows rather than on internals.

/** The text of `GET http://127.0.0.1:<port>/metrics`. */
export async function scrape(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return response.text();
}

/**
 * The value of one sample in Prometheus text: `name` with exactly `labels`
 * (in any order), or undefined when the series is absent.
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (match[3] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      found[pair[1] ?? ""] = pair[2] ?? "";
    }
    const wanted = Object.entries(labels);
    if (Object.keys(found).length === wanted.length && wanted.every(([key, value]) => found[key] === value)) {
      return Number(match[4]);
    }
  }
  return undefined;
}

/**
 * Database lookups Verify has made (row-cache misses and bypasses): a count that
 * must not move when a key is refused before any lookup.
 */
export async function rowLookups(port: number): Promise<number> {
  const text = await scrape(port);
  const count = (outcome: string) =>
    sample(text, "latchkey_token_service_row_cache_lookups_total", { outcome }) ?? 0;
  return count("miss") + count("bypass");
}
