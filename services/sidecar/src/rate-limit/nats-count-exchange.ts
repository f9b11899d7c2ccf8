import { randomBytes } from "node:crypto";
import { type NatsKeyEventBusOptions, natsConnectionOptions } from "@latchkey/events";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { CountDelta, RateLimiter } from "./rate-limiter.js";

/** Core NATS subject prefix of rate-limit counts: `latchkey.ratelimit.counts.<sidecar id>`. */
export const RATE_LIMIT_COUNTS_SUBJECT_PREFIX = "latchkey.ratelimit.counts";
/** Deltas in one message at most; more are sent in several. */
const MAX_DELTAS_PER_MESSAGE = 2_000;
/** Longest counter id accepted from a peer (subject `|` name `|` window). */
const MAX_ID_LENGTH = 200;
/** A count a peer can claim in one message for one counter; more is junk. */
const MAX_DELTA = 1_000_000_000;
const SENDER = /^[A-Za-z0-9_-]{1,64}$/;

/** Options of {@link createNatsCountExchange}. */
export interface NatsCountExchangeOptions {
  readonly limiter: RateLimiter;
  /** The NATS connection settings (servers, nkey seed file, TLS), as for the key event bus. */
  readonly nats: NatsKeyEventBusOptions;
  /** How often this sidecar publishes its counts (`LATCHKEY_RATE_LIMIT_SYNC_MS`). */
  readonly syncIntervalMs: number;
  readonly logger: Logger;
  /** Told when counting switches between shared and alone, and the peers it assumes. */
  readonly onModeChange?: (shared: boolean, peers: number) => void;
}

/** A running count exchange. */
export interface NatsCountExchange {
  /** This sidecar's id on the subject. */
  readonly id: string;
  /** Sidecars it currently counts with, itself included. */
  peers(): number;
  /** Whether counts are being shared (NATS reachable). */
  shared(): boolean;
  close(): Promise<void>;
}

/**
 * Shares the limiter's counts with the other sidecars over core NATS: every
 * `syncIntervalMs` one message with the counts admitted since the last one
 * (`{"v":1,"d":[[id, window index, count], …]}`), and an empty one at least
 * once a second so idle peers are still known. Each sidecar adds what it hears
 * to its own estimate, so none asks anyone per request. While NATS is
 * unreachable the limiter counts alone and admits its share (limit / peers,
 * the peers it last heard or `expectedPeers`), logged once per outage.
 */
export function createNatsCountExchange(options: NatsCountExchangeOptions): NatsCountExchange {
  const { limiter, logger, syncIntervalMs } = options;
  const id = randomBytes(9).toString("base64url");
  const subject = `${RATE_LIMIT_COUNTS_SUBJECT_PREFIX}.${id}`;
  const seen = new Map<string, number>();
  // A peer not heard for this long has gone (it sends at least once a second).
  const peerTimeoutMs = Math.max(5_000, syncIntervalMs * 10);
  let connection: NatsConnection | undefined;
  let closed = false;
  let connected = false;
  let lastSent = 0;
  let peersWhenShared = 1;
  let ticks = 0;

  function peerCount(at: number): number {
    if (!connected) return peersWhenShared;
    let count = 1;
    for (const [peer, last] of seen) {
      if (at - last <= peerTimeoutMs) count += 1;
      else seen.delete(peer);
    }
    return count;
  }

  function setConnected(value: boolean): void {
    if (value === connected) return;
    if (!value) peersWhenShared = peerCount(Date.now());
    connected = value;
    const peers = value ? peerCount(Date.now()) : peersWhenShared;
    limiter.setShared(value, peers);
    options.onModeChange?.(value, peers);
    if (value) logger.info({ peers }, "rate limits: counting with the other sidecars over NATS again");
    else
      logger.warn(
        { peers },
        "rate limits: NATS unreachable; each sidecar now admits its local share (limit / peers) until it is back",
      );
  }

  function publish(): void {
    const nc = connection;
    const at = Date.now();
    ticks += 1;
    if (ticks % Math.max(1, Math.round(1_000 / syncIntervalMs)) === 0) limiter.sweep();
    if (nc === undefined || !connected) return;
    const deltas = limiter.takeDeltas();
    if (deltas.length === 0 && at - lastSent < 1_000) return;
    lastSent = at;
    try {
      if (deltas.length === 0) nc.publish(subject, EMPTY);
      for (let i = 0; i < deltas.length; i += MAX_DELTAS_PER_MESSAGE) {
        nc.publish(subject, JSON.stringify({ v: 1, d: deltas.slice(i, i + MAX_DELTAS_PER_MESSAGE) }));
      }
    } catch (error) {
      // Published while the connection broke: these counts are lost to peers (each still counts them).
      logger.debug({ err: error }, "rate limits: publishing counts failed");
    }
  }

  function receive(from: string, data: Uint8Array): void {
    if (from === id || !SENDER.test(from)) return;
    seen.set(from, Date.now());
    if (data.length <= EMPTY.length) return;
    let message: unknown;
    try {
      message = JSON.parse(new TextDecoder().decode(data));
    } catch {
      return;
    }
    const deltas = (message as { v?: unknown; d?: unknown } | null)?.d;
    if ((message as { v?: unknown }).v !== 1 || !Array.isArray(deltas)) return;
    for (const entry of deltas.slice(0, MAX_DELTAS_PER_MESSAGE)) {
      if (!isDelta(entry)) continue;
      limiter.addRemote(entry[0], entry[1], entry[2]);
    }
    limiter.setShared(true, peerCount(Date.now()));
  }

  const timer = setInterval(publish, syncIntervalMs);
  timer.unref();
  limiter.setShared(false, 1);

  const connecting = connect({ ...natsConnectionOptions(options.nats), noEcho: true });
  connecting.then(
    async (nc) => {
      if (closed) {
        await nc.close();
        return;
      }
      connection = nc;
      nc.subscribe(`${RATE_LIMIT_COUNTS_SUBJECT_PREFIX}.*`, {
        callback: (error, msg) => {
          if (error === null)
            receive(msg.subject.slice(RATE_LIMIT_COUNTS_SUBJECT_PREFIX.length + 1), msg.data);
        },
      });
      connected = false;
      setConnected(true);
      for await (const status of nc.status()) {
        if (status.type === "disconnect") setConnected(false);
        else if (status.type === "reconnect") setConnected(true);
      }
    },
    (error: unknown) => {
      logger.warn({ err: error }, "rate limits: cannot connect to NATS; counting alone");
      options.onModeChange?.(false, peersWhenShared);
    },
  );

  return {
    id,
    peers: () => peerCount(Date.now()),
    shared: () => connected,
    async close() {
      closed = true;
      clearInterval(timer);
      publish();
      await connection?.drain().catch(() => {});
    },
  };
}

const EMPTY = new Uint8Array(0);

function isDelta(entry: unknown): entry is CountDelta {
  return (
    Array.isArray(entry) &&
    entry.length === 3 &&
    typeof entry[0] === "string" &&
    entry[0].length <= MAX_ID_LENGTH &&
    Number.isSafeInteger(entry[1]) &&
    (entry[1] as number) >= 0 &&
    Number.isSafeInteger(entry[2]) &&
    (entry[2] as number) > 0 &&
    (entry[2] as number) <= MAX_DELTA
  );
}
