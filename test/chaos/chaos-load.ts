// The chaos run's steady load: requests through every sidecar with a mix of valid keys, keys about
// to be revoked, freshly revoked keys and long-revoked ones, and a revoker that issues a key, lets
// the load warm every cache with it, and revokes it, one every `revokeEveryMs`, through every fault.
import { request } from "undici";
import { adminClients } from "../bench/admin-client.js";
import type { ChaosKey, ChaosLedger } from "./chaos-ledger.js";
import type { ChaosSettings } from "./chaos-settings.js";
import type { ChaosStack } from "./chaos-stack.js";

/** Keys issued ahead of their revocation, so the load has them cached as VALID everywhere. */
const UPCOMING = 4;
/** Load requests run concurrently at most this many. */
const WORKERS = 12;
/** A request with no answer by then counts as unreachable. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Admin RPCs (Issue, Revoke) give up after this and are tried again. */
const ADMIN_TIMEOUT_MS = 5_000;

/** The running load. */
export interface ChaosLoad {
  readonly valid: readonly ChaosKey[];
  readonly revoked: readonly ChaosKey[];
  /** Sends one request with `key` to `url` and records it. */
  send(url: string, key: ChaosKey): Promise<number | "unreachable">;
  /** Issues a key now (retrying until it succeeds or the load stops). */
  issue(name: string): Promise<ChaosKey>;
  /** Revokes `key` now (retrying until Revoke returns OK) and records the times. */
  revoke(key: ChaosKey): Promise<void>;
  /** Stops sending and revoking; resolves when everything in flight is done. */
  stop(): Promise<void>;
}

/**
 * Creates a team and the valid keys, then starts the load and the revoker.
 *
 * @example
 * ```ts
 * const load = await startChaosLoad(stack, settings, ledger);
 * await load.stop();
 * ```
 */
export async function startChaosLoad(
  stack: ChaosStack,
  settings: ChaosSettings,
  ledger: ChaosLedger,
): Promise<ChaosLoad> {
  const { teams, tokens } = adminClients(stack.tokenServiceUrl, stack.rootKey);
  let stopped = false;
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Tries `call` until it succeeds (each try bounded), or the load stops. */
  async function persist<T>(call: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await call();
      } catch (error) {
        if (stopped) throw error;
        await pause(200);
      }
    }
  }

  const { team } = await persist(() => teams.createTeam({ name: "chaos" }, { timeoutMs: ADMIN_TIMEOUT_MS }));
  const teamId = team?.id ?? "";
  let serial = 0;
  const issue = async (name: string): Promise<ChaosKey> => {
    const issued = await persist(() =>
      tokens.issue(
        { teamId, name: `${name}-${++serial}`, scopes: ["read"] },
        { timeoutMs: ADMIN_TIMEOUT_MS },
      ),
    );
    return { keyId: issued.key?.id ?? "", token: issued.token };
  };
  const revoke = async (key: ChaosKey) => {
    key.revokeSentAt ??= performance.now();
    await persist(() => tokens.revoke({ keyId: key.keyId }, { timeoutMs: ADMIN_TIMEOUT_MS }));
    key.revokedAt = performance.now();
  };

  const valid: ChaosKey[] = [];
  for (let i = 0; i < settings.validKeys; i++) valid.push(await issue("valid"));
  const upcoming: ChaosKey[] = [];
  for (let i = 0; i < UPCOMING; i++) upcoming.push(await issue("doomed"));
  const revoked: ChaosKey[] = [];

  async function send(url: string, key: ChaosKey): Promise<number | "unreachable"> {
    const sentAt = performance.now();
    let answer: number | "unreachable";
    try {
      const response = await request(url, {
        headers: { authorization: `Bearer ${key.token}` },
        headersTimeout: REQUEST_TIMEOUT_MS,
        bodyTimeout: REQUEST_TIMEOUT_MS,
      });
      await response.body.dump();
      answer = response.statusCode;
    } catch {
      answer = "unreachable";
    }
    ledger.record(key, sentAt, performance.now(), answer);
    return answer;
  }

  /** Valid keys, the keys about to be revoked and the freshly revoked ones get most of the load. */
  function pickKey(): ChaosKey {
    const roll = Math.random();
    const now = performance.now();
    if (roll < 0.4 || revoked.length === 0) return pick(valid);
    if (roll < 0.8) {
      const fresh = revoked.filter((key) => now - (key.revokedAt ?? now) < settings.boundMs + 3_000);
      return pick([...upcoming, ...revoked.slice(-8), ...fresh]);
    }
    return pick(revoked);
  }

  const workers = Array.from({ length: WORKERS }, async () => {
    const interval = (1000 * WORKERS) / settings.rate;
    while (!stopped) {
      const started = performance.now();
      const up = stack.sidecars.filter((sidecar) => sidecar.process !== undefined);
      const sidecar = up.length === 0 ? undefined : pick(up);
      if (sidecar?.process !== undefined) await send(sidecar.process.url, pickKey());
      await pause(Math.max(0, interval - (performance.now() - started)));
    }
  });

  const revoker = (async () => {
    while (!stopped) {
      const started = performance.now();
      const next = upcoming.shift();
      if (next !== undefined) {
        await revoke(next).catch(() => undefined);
        if (next.revokedAt !== undefined) revoked.push(next);
      }
      if (stopped) break;
      try {
        upcoming.push(await issue("doomed"));
      } catch {
        break; // Only when stopped.
      }
      await pause(Math.max(0, settings.revokeEveryMs - (performance.now() - started)));
    }
  })();

  return {
    valid,
    revoked,
    send,
    issue,
    revoke,
    async stop() {
      stopped = true;
      await Promise.all([...workers, revoker]);
    },
  };
}

function pick<T>(list: readonly T[]): T {
  const item = list[Math.floor(Math.random() * list.length)];
  if (item === undefined) throw new Error("pick from an empty list");
  return item;
}
