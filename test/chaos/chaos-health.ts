// "No process left in a bad state": after a fault heals, every sidecar must accept a valid key and
// refuse a revoked one, and every process's metrics must say it is connected and current again.
import type { ChaosLoad } from "./chaos-load.js";
import type { ChaosSettings } from "./chaos-settings.js";
import type { ChaosStack } from "./chaos-stack.js";

/** How the stack came back. */
export interface Recovery {
  /** Whether every check passed within `recoverMs`. */
  readonly ok: boolean;
  /** From the heal to the first time every check passed (or to giving up). */
  readonly ms: number;
  /** The checks still failing when it gave up. */
  readonly failing: readonly string[];
  /** The checks that failed last before all passed (what took longest to come back). */
  readonly last: readonly string[];
}

/**
 * Polls every check until all pass at once or `settings.recoverMs` has gone by.
 * The checks: each sidecar's `latchkey_verifier_nats_connected` is 1 and its
 * `latchkey_verifier_currency_age_seconds` below `maxStaleMs`; each replica's
 * `latchkey_token_service_nats_connected` and `…_key_events_connected` are 1
 * and its outbox holds no row older than a second; each sidecar accepts a
 * valid key and refuses the key revoked longest ago.
 *
 * @example
 * ```ts
 * const recovery = await waitForRecovery(stack, load, settings);
 * ```
 */
export async function waitForRecovery(
  stack: ChaosStack,
  load: ChaosLoad,
  settings: ChaosSettings,
): Promise<Recovery> {
  const started = performance.now();
  let last: string[] = [];
  for (;;) {
    const failing = await failingChecks(stack, load, settings);
    const ms = Math.round(performance.now() - started);
    if (failing.length === 0) return { ok: true, ms, failing, last };
    if (ms > settings.recoverMs) return { ok: false, ms, failing, last: failing };
    last = failing;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function failingChecks(stack: ChaosStack, load: ChaosLoad, settings: ChaosSettings): Promise<string[]> {
  const failing: string[] = [];
  const validKey = load.valid[0];
  const revokedKey = load.revoked[0];
  await Promise.all([
    ...stack.sidecars.map(async (sidecar) => {
      const process = sidecar.process;
      if (process === undefined) {
        failing.push(`${sidecar.name} not running`);
        return;
      }
      if (process.process.child.exitCode !== null) {
        failing.push(`${sidecar.name} exited`);
        return;
      }
      const metrics = await scrape(`${process.adminUrl}/metrics`);
      if (metrics.get("latchkey_verifier_nats_connected") !== 1) failing.push(`${sidecar.name} NATS`);
      const age = metrics.get("latchkey_verifier_currency_age_seconds") ?? Number.POSITIVE_INFINITY;
      if (!(age * 1000 < settings.maxStaleMs)) failing.push(`${sidecar.name} currency`);
      if (validKey !== undefined && (await load.send(process.url, validKey)) !== 200) {
        failing.push(`${sidecar.name} valid key`);
      }
      if (revokedKey !== undefined && (await load.send(process.url, revokedKey)) === 200) {
        failing.push(`${sidecar.name} revoked key`);
      }
    }),
    ...stack.replicas.map(async (replica) => {
      const child = replica.process?.child;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
        failing.push(`${replica.name} exited`);
        return;
      }
      const metrics = await scrape(`${replica.metricsUrl}/metrics`);
      if (metrics.get("latchkey_token_service_nats_connected") !== 1) failing.push(`${replica.name} NATS`);
      if (metrics.get("latchkey_token_service_key_events_connected") !== 1) {
        failing.push(`${replica.name} key events`);
      }
      const outboxAge = metrics.get("latchkey_token_service_outbox_oldest_pending_age_seconds");
      if (outboxAge === undefined || outboxAge > 1) failing.push(`${replica.name} outbox`);
    }),
  ]);
  return failing.sort();
}

/**
 * The last lines each exited process wrote, for the report of a fault the stack did not recover
 * from (a crash is the likeliest cause, and its stack trace is there).
 */
export function exitedProcessOutput(stack: ChaosStack): string {
  const tails: string[] = [];
  for (const replica of stack.replicas) {
    const service = replica.process;
    if (service !== undefined && (service.child.exitCode !== null || service.child.signalCode !== null)) {
      tails.push(
        `--- ${replica.name} exited (${service.child.exitCode ?? service.child.signalCode}):\n${service.output().slice(-4_000)}`,
      );
    }
  }
  for (const sidecar of stack.sidecars) {
    const child = sidecar.process?.process.child;
    if (child !== undefined && child.exitCode !== null) {
      tails.push(
        `--- ${sidecar.name} exited (${child.exitCode}):\n${sidecar.process?.output().slice(-4_000)}`,
      );
    }
  }
  return tails.join("\n");
}

/** Reads a Prometheus text page into unlabelled series (the first sample of each name); empty on failure. */
async function scrape(url: string): Promise<Map<string, number>> {
  const values = new Map<string, number>();
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    if (!response.ok) return values;
    for (const line of (await response.text()).split("\n")) {
      if (line.startsWith("#") || line === "") continue;
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)/.exec(line);
      if (match?.[1] !== undefined && !values.has(match[1])) values.set(match[1], Number(match[2]));
    }
  } catch {
    // Not answering is a failing check, seen as missing series.
  }
  return values;
}
