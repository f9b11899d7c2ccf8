import { readFileSync } from "node:fs";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type KeyEvent,
  KeyEventSchema,
  type OutboxCurrencyRequest,
  OutboxCurrencyRequestSchema,
  OutboxCurrencySchema,
  type UsageReport,
  UsageReportSchema,
  type VerifierAck,
  VerifierAckSchema,
  type VerifierHeartbeat,
  VerifierHeartbeatSchema,
} from "@latchkey/proto";
import {
  jetstream as createJetStreamClient,
  jetstreamManager as createJetStreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type StreamInfo,
} from "@nats-io/jetstream";
import {
  connect,
  headers,
  type Msg,
  type NatsConnection,
  type NodeConnectionOptions,
  nkeyAuthenticator,
  type Subscription,
} from "@nats-io/transport-node";
import type { KeyEventBus, KeyEventSubscription, VerifierMessage } from "./key-event-bus.js";
import { ensureKeyEventStream, isNoStream } from "./nats-key-event-stream.js";
import {
  type NatsKeyEventSubscription,
  openNatsKeyEventSubscription,
} from "./nats-key-event-subscription.js";
import { consumeUsageReports, ensureUsageStream } from "./nats-usage-stream.js";
import type { OutboxCurrencyQuestion } from "./outbox-currency-transport.js";
import {
  KEY_EVENTS_STREAM,
  keyEventSubject,
  USAGE_STREAM,
  usageSubject,
  VERIFIER_ACK_SUBJECT_PREFIX,
  VERIFIER_CURRENCY_SUBJECT_PREFIX,
  VERIFIER_HEARTBEAT_SUBJECT_PREFIX,
  verifierSubject,
} from "./subjects.js";

/**
 * The logging calls the bus makes; a pino logger fits.
 *
 * @example
 * ```ts
 * createNatsKeyEventBus({ servers, logger: pino() });
 * ```
 */
export interface KeyEventBusLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/**
 * Options of {@link createNatsKeyEventBus}. Retention (`streamMax*`) and
 * `replicas` matter only to the bus that calls `ensureStream` (the token-service).
 *
 * @example
 * ```ts
 * const options: NatsKeyEventBusOptions = { servers: "nats://nats:4222", name: "latchkey-sidecar" };
 * ```
 */
export interface NatsKeyEventBusOptions {
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222` (the `NATS_URL` setting). */
  readonly servers: string | readonly string[];
  /** Connection name shown by the server's monitoring (`latchkey-sidecar`, …). */
  readonly name?: string;
  /** Stream retention by age, for {@link NatsKeyEventBus.ensureStream} (default 24 h). */
  readonly streamMaxAgeMs?: number;
  /** Stream retention by size, for {@link NatsKeyEventBus.ensureStream} (default 1 GiB). */
  readonly streamMaxBytes?: number;
  /** Stream retention by count, for {@link NatsKeyEventBus.ensureStream} (default unlimited). */
  readonly streamMaxMessages?: number;
  /** Stream replicas in a NATS cluster (default 1), for both streams. */
  readonly replicas?: number;
  /** Usage reports not consumed within this long are dropped, for {@link NatsKeyEventBus.ensureUsageStream} (default 24 h). */
  readonly usageStreamMaxAgeMs?: number;
  /** Wait between reconnect attempts, in ms (default 250). Reconnection never gives up. */
  readonly reconnectTimeWaitMs?: number;
  /**
   * Interval of the client's PING, in ms (default 10,000). With two unanswered pings the
   * connection counts as dead and is re-established; this bounds how long a silently
   * broken TCP connection goes unnoticed.
   */
  readonly pingIntervalMs?: number;
  /** Timeout of JetStream requests (publish acks, stream info), in ms (default 5,000). */
  readonly requestTimeoutMs?: number;
  /** Where connection changes and dropped events are reported (default: nowhere). */
  readonly logger?: KeyEventBusLogger;
  /**
   * File holding this client's NATS user nkey seed (`SU…`), e.g. mounted from a Secret.
   * Read at every (re)connect, so a rotated Secret is picked up without a restart; the
   * seed signs the server's nonce and never leaves the process. Unset: no credentials.
   */
  readonly nkeySeedFile?: string;
  /** TLS to the NATS server; set, the connection is TLS or nothing. */
  readonly tls?: NatsTlsFiles;
  /**
   * Prefix of this client's reply subjects (default `_INBOX`). The token-service uses
   * {@link TOKEN_SERVICE_INBOX_PREFIX}, which only its NATS user may subscribe to, so
   * no verifier hears (or answers) replies meant for it.
   */
  readonly inboxPrefix?: string;
}

/**
 * PEM files for TLS to NATS. Read at every (re)connect, so renewed certificates
 * (cert-manager) are picked up without a restart.
 *
 * @example
 * ```ts
 * const tls: NatsTlsFiles = { caFile: "/etc/latchkey/nats-tls/ca.crt" };
 * ```
 */
export interface NatsTlsFiles {
  /** CA bundle the server's certificate must chain to (default: the system's). */
  readonly caFile?: string;
  /** Client certificate, for a server that asks for one (`verify: true`); with `keyFile`. */
  readonly certFile?: string;
  /** Key of `certFile`. */
  readonly keyFile?: string;
}

/**
 * A {@link KeyEventBus} over NATS JetStream, with the stream management the token-service needs.
 *
 * @example
 * ```ts
 * const bus: NatsKeyEventBus = createNatsKeyEventBus({ servers: "nats://nats:4222" });
 * await bus.connected();
 * await bus.ensureStream();
 * ```
 */
export interface NatsKeyEventBus extends KeyEventBus {
  /**
   * Creates the stream `LATCHKEY_KEY_EVENTS` or updates its limits: subjects
   * `latchkey.keys.>`, limits retention (age, bytes, count), a 2-minute duplicate
   * window for `Nats-Msg-Id`, file storage. Called by the token-service at start;
   * verifiers never create the stream. After the first call, `publish` puts the
   * stream back if it disappears (a NATS server restarted without its store).
   */
  ensureStream(): Promise<{ created: boolean }>;
  /**
   * Creates the stream `LATCHKEY_USAGE` or updates its limits (work-queue
   * retention, 10-minute duplicate window). Called by the token-service at
   * start; verifiers only publish to it.
   */
  ensureUsageStream(): Promise<{ created: boolean }>;
  /** Resolves once the first connection is up (connecting never gives up on its own). */
  connected(): Promise<void>;
}

const noLogger: KeyEventBusLogger = { info() {}, warn() {} };

/**
 * A reply subject in a verifier's inbox: the NATS client's default `_INBOX.<nuid>` (and a
 * request's token after it). Verifiers keep that default; the token-service's own prefix
 * (TOKEN_SERVICE_INBOX_PREFIX) is `_INBOX_…`, which this does not match.
 */
const VERIFIER_INBOX = /^_INBOX(\.[A-Za-z0-9_-]{1,64}){1,4}$/;

/**
 * The key event bus over NATS JetStream. Events go to the stream
 * `LATCHKEY_KEY_EVENTS` on `latchkey.keys.<team>.<event>` as protobuf `KeyEvent`,
 * with the outbox id as `Nats-Msg-Id` so a re-publish is de-duplicated.
 * Subscribers read with an ordered consumer filtered on the single subject
 * `latchkey.keys.>` (an array of filters needs NATS server 2.10; the client
 * refuses it on 2.9) starting at an explicit sequence; after every reconnect
 * they resume at the sequence after the last one delivered, and report a gap
 * when the stream no longer holds it (dropped by retention, purged, or the
 * stream re-created). Acks and heartbeats are core NATS
 * messages on `latchkey.verifiers.ack.<id>` / `latchkey.verifiers.heartbeat.<id>`.
 *
 * The connection is made in the background and retried forever (NATS outages
 * are expected); `subscribe`, `publish` and `lastSequence` wait for it.
 *
 * @example
 * ```ts
 * const bus = createNatsKeyEventBus({ servers: process.env.NATS_URL!, name: "token-service" });
 * await bus.ensureStream();
 * const { sequence } = await bus.publish(event, String(outboxId));
 * ```
 */
export function createNatsKeyEventBus(options: NatsKeyEventBusOptions): NatsKeyEventBus {
  const logger = options.logger ?? noLogger;
  const requestTimeoutMs = options.requestTimeoutMs ?? 5_000;
  const subscriptions = new Set<NatsKeyEventSubscription>();
  const usageConsumers = new Set<{ close(): Promise<void> }>();
  let closed = false;
  let connectedNow = false;
  let connection: NatsConnection | undefined;
  /** Callers of {@link whenConnected} waiting for the connection to come back. */
  const connectWaiters = new Set<() => void>();
  let manager: Promise<JetStreamManager> | undefined;
  let client: JetStreamClient | undefined;
  /** Set once this bus has created or updated the stream: from then on it re-creates a lost one. */
  let managesStream = false;

  const connecting: Promise<NatsConnection> = connect(connectionOptions(options));
  // Keeps an unobserved failure (bad URL) from crashing the process; every user awaits `connecting`.
  connecting.catch(() => {});
  connecting.then(
    (nc) => {
      if (closed) {
        void nc.close();
        return;
      }
      connection = nc;
      setConnected(true);
      logger.info({ server: nc.getServer() }, "connected to NATS");
      void watchStatus(nc);
      void nc.closed().then(() => {
        connectedNow = false;
      });
    },
    (error: unknown) => logger.warn({ err: error }, "cannot connect to NATS"),
  );

  async function watchStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        setConnected(false);
        logger.warn({ server: status.server }, "disconnected from NATS");
        for (const subscription of subscriptions) subscription.disconnected();
      } else if (status.type === "reconnect") {
        setConnected(true);
        logger.info({ server: status.server }, "reconnected to NATS");
        for (const subscription of subscriptions) subscription.reconnected();
      }
    }
  }

  function setConnected(connected: boolean): void {
    connectedNow = connected;
    if (!connected) return;
    for (const resolve of connectWaiters) resolve();
    connectWaiters.clear();
  }

  /**
   * Waits (bounded) until the connection is up. A JetStream request sent while
   * reconnecting is buffered and its reply can be lost, so requests wait for
   * the connection rather than time out on a request that never had a chance.
   */
  async function whenConnected(timeoutMs: number): Promise<void> {
    if (connectedNow) return;
    if (closed) throw new Error("key event bus is closed");
    let timer: ReturnType<typeof setTimeout> | undefined;
    let done: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        done = resolve;
        connectWaiters.add(resolve);
        timer = setTimeout(() => reject(new Error("NATS is not connected")), timeoutMs);
      });
    } finally {
      clearTimeout(timer);
      if (done !== undefined) connectWaiters.delete(done);
    }
  }

  async function jetstreamManager(): Promise<JetStreamManager> {
    const nc = await connecting;
    manager ??= createJetStreamManager(nc, { timeout: requestTimeoutMs });
    // A failed attempt (JetStream still starting after a restart) must not be cached.
    return manager.catch((error: unknown) => {
      manager = undefined;
      throw error;
    });
  }

  async function jetstream(): Promise<JetStreamClient> {
    const nc = await connecting;
    client ??= createJetStreamClient(nc, { timeout: requestTimeoutMs });
    return client;
  }

  async function streamInfo(): Promise<StreamInfo> {
    await connecting;
    await whenConnected(requestTimeoutMs);
    return (await jetstreamManager()).streams.info(KEY_EVENTS_STREAM);
  }

  async function ensureStream(): Promise<{ created: boolean }> {
    managesStream = true;
    await connecting;
    await whenConnected(requestTimeoutMs);
    return ensureKeyEventStream(await jetstreamManager(), {
      ...(options.streamMaxAgeMs !== undefined ? { maxAgeMs: options.streamMaxAgeMs } : {}),
      ...(options.streamMaxBytes !== undefined ? { maxBytes: options.streamMaxBytes } : {}),
      ...(options.streamMaxMessages !== undefined ? { maxMessages: options.streamMaxMessages } : {}),
      ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
    });
  }

  return {
    async connected() {
      await connecting;
    },

    ensureStream,

    async ensureUsageStream() {
      await connecting;
      await whenConnected(requestTimeoutMs);
      return ensureUsageStream(await jetstreamManager(), {
        ...(options.usageStreamMaxAgeMs !== undefined ? { maxAgeMs: options.usageStreamMaxAgeMs } : {}),
        ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
      });
    },

    async publishUsage(report: UsageReport, messageId: string) {
      // Bounded: while NATS is away the verifier keeps the batch and tries again next flush.
      await whenConnected(requestTimeoutMs);
      const js = await jetstream();
      const ack = await js.publish(usageSubject(report.verifierId), toBinary(UsageReportSchema, report), {
        msgID: messageId,
        expect: { streamName: USAGE_STREAM },
        timeout: requestTimeoutMs,
      });
      return { duplicate: ack.duplicate };
    },

    async consumeUsage(handler) {
      if (closed) throw new Error("key event bus is closed");
      const consumer = consumeUsageReports(
        {
          jetstream,
          jetstreamManager,
          isConnected: () => connectedNow && !closed,
          logger,
          retryMs: 1_000,
        },
        handler,
      );
      usageConsumers.add(consumer);
      return {
        async close() {
          usageConsumers.delete(consumer);
          await consumer.close();
        },
      };
    },

    async publish(event: KeyEvent, messageId: string, extraHeaders?: Readonly<Record<string, string>>) {
      const subject = keyEventSubject(event.teamId, event.type);
      const payload = toBinary(KeyEventSchema, event);
      let messageHeaders: ReturnType<typeof headers> | undefined;
      if (extraHeaders !== undefined) {
        for (const name of Object.keys(extraHeaders)) {
          messageHeaders ??= headers();
          messageHeaders.set(name, extraHeaders[name] as string);
        }
      }
      const send = async () => {
        await whenConnected(requestTimeoutMs);
        const js = await jetstream();
        const ack = await js.publish(subject, payload, {
          msgID: messageId,
          expect: { streamName: KEY_EVENTS_STREAM },
          timeout: requestTimeoutMs,
          ...(messageHeaders === undefined ? {} : { headers: messageHeaders }),
        });
        return { sequence: ack.seq, duplicate: ack.duplicate };
      };
      try {
        return await send();
      } catch (error) {
        // A NATS server restarted without its store has no stream: put it back and retry once.
        if (!managesStream || !isNoStream(error)) throw error;
        logger.warn({ stream: KEY_EVENTS_STREAM }, "key event stream is missing; re-creating it");
        await ensureStream();
        return send();
      }
    },

    async subscribe(subscriber, subscribeOptions = {}): Promise<KeyEventSubscription> {
      if (closed) throw new Error("key event bus is closed");
      const subscription = await openNatsKeyEventSubscription(
        { logger, streamInfo, jetstream, isClosed: () => closed, isConnected: () => connectedNow },
        subscriber,
        subscribeOptions.afterSequence,
      );
      subscriptions.add(subscription);
      return {
        async close() {
          subscriptions.delete(subscription);
          await subscription.close();
        },
      };
    },

    async lastSequence() {
      return (await streamInfo()).state.last_seq;
    },

    sendAck(ack: VerifierAck) {
      publishCore(VERIFIER_ACK_SUBJECT_PREFIX, ack.verifierId, () => toBinary(VerifierAckSchema, ack));
    },

    sendHeartbeat(heartbeat: VerifierHeartbeat) {
      publishCore(VERIFIER_HEARTBEAT_SUBJECT_PREFIX, heartbeat.verifierId, () =>
        toBinary(VerifierHeartbeatSchema, heartbeat),
      );
    },

    onVerifierMessage(handler: (message: VerifierMessage) => void): KeyEventSubscription {
      return subscribeCore("latchkey.verifiers.>", (message) => {
        if (message.subject.startsWith(`${VERIFIER_ACK_SUBJECT_PREFIX}.`)) {
          handler({ kind: "ack", ack: fromBinary(VerifierAckSchema, message.data) });
        } else if (message.subject.startsWith(`${VERIFIER_HEARTBEAT_SUBJECT_PREFIX}.`)) {
          handler({ kind: "heartbeat", heartbeat: fromBinary(VerifierHeartbeatSchema, message.data) });
        }
      });
    },

    async requestOutboxCurrency(request: OutboxCurrencyRequest, timeoutMs: number) {
      const nc = connection;
      // A request made while reconnecting would wait in the client's buffer: a proof is only
      // worth having from a connection that is up now.
      if (closed || nc === undefined || !connectedNow) throw new Error("NATS is not connected");
      const reply = await nc.request(
        verifierSubject(VERIFIER_CURRENCY_SUBJECT_PREFIX, request.verifierId),
        toBinary(OutboxCurrencyRequestSchema, request),
        { timeout: timeoutMs },
      );
      return fromBinary(OutboxCurrencySchema, reply.data);
    },

    onOutboxCurrencyRequest(handler: (question: OutboxCurrencyQuestion) => void) {
      return subscribeCore(`${VERIFIER_CURRENCY_SUBJECT_PREFIX}.*`, (message) => {
        const replyTo = message.reply;
        if (replyTo === undefined || replyTo === "") return;
        // The answer goes wherever the request says. The token-service's NATS user may publish key
        // events and JetStream API requests, so a reply subject naming one of those would make it
        // write there for whoever asked: answer only into a verifier's inbox.
        if (!VERIFIER_INBOX.test(replyTo)) {
          logger.warn(
            { subject: message.subject },
            "outbox currency request with a reply subject outside _INBOX",
          );
          return;
        }
        const request = fromBinary(OutboxCurrencyRequestSchema, message.data);
        let answered = false;
        handler({
          request,
          respond(answer) {
            if (answered || closed) return;
            answered = true;
            try {
              message.respond(toBinary(OutboxCurrencySchema, answer));
            } catch (error) {
              logger.warn({ err: error }, "cannot answer an outbox currency request");
            }
          },
        });
      });
    },

    isConnected() {
      return connectedNow && !closed;
    },

    async close() {
      if (closed) return;
      closed = true;
      connectedNow = false;
      await Promise.all([...subscriptions, ...usageConsumers].map((subscription) => subscription.close()));
      subscriptions.clear();
      usageConsumers.clear();
      // Still connecting for the first time: `connecting.then` closes the connection when it comes.
      const nc = connection;
      if (nc !== undefined && !nc.isClosed()) await nc.drain().catch(() => nc.close());
    },
  };

  /**
   * A core NATS subscription made once connected; `onMessage` may throw (an
   * undecodable message from a peer), which is logged, never raised.
   */
  function subscribeCore(subject: string, onMessage: (message: Msg) => void): KeyEventSubscription {
    let subscription: Subscription | undefined;
    let unsubscribed = false;
    const ready = connecting.then((nc) => {
      if (unsubscribed) return;
      subscription = nc.subscribe(subject, {
        callback: (error, message) => {
          if (error) return;
          try {
            onMessage(message);
          } catch (decodeError) {
            logger.warn({ err: decodeError, subject: message.subject }, "undecodable verifier message");
          }
        },
      });
    });
    ready.catch(() => {});
    return {
      async close() {
        unsubscribed = true;
        subscription?.unsubscribe();
      },
    };
  }

  /**
   * Fire-and-forget core NATS publish. Dropped before the first connection;
   * while reconnecting, the client buffers it.
   */
  function publishCore(prefix: string, verifierId: string, encode: () => Uint8Array): void {
    const nc = connection;
    if (closed || nc === undefined || nc.isClosed() || nc.isDraining()) return;
    try {
      nc.publish(verifierSubject(prefix, verifierId), encode());
    } catch (error) {
      logger.warn({ err: error, prefix }, "cannot publish verifier message");
    }
  }
}

/** The nats client's options for a bus: reconnect forever, credentials and TLS as given. */
/**
 * The connection options every Latchkey NATS client uses (reconnect forever,
 * nkey and TLS files read at each connect), for clients beside the bus such
 * as the sidecar's rate-limit count exchange.
 *
 * @example
 * ```ts
 * const nc = await connect(natsConnectionOptions({ servers: "nats://127.0.0.1:4222", name: "x" }));
 * ```
 */
export function natsConnectionOptions(options: NatsKeyEventBusOptions): NodeConnectionOptions {
  return connectionOptions(options);
}

function connectionOptions(options: NatsKeyEventBusOptions): NodeConnectionOptions {
  const { nkeySeedFile, tls, inboxPrefix } = options;
  return {
    servers: typeof options.servers === "string" ? options.servers : [...options.servers],
    name: options.name ?? "latchkey",
    maxReconnectAttempts: -1,
    reconnectTimeWait: options.reconnectTimeWaitMs ?? 250,
    waitOnFirstConnect: true,
    pingInterval: options.pingIntervalMs ?? 10_000,
    maxPingOut: 2,
    ...(inboxPrefix !== undefined ? { inboxPrefix } : {}),
    ...(nkeySeedFile !== undefined
      ? {
          authenticator: nkeyAuthenticator(() =>
            new TextEncoder().encode(readFileSync(nkeySeedFile, "utf8").trim()),
          ),
        }
      : {}),
    ...(tls !== undefined
      ? {
          tls: {
            ...(tls.caFile !== undefined ? { caFile: tls.caFile } : {}),
            ...(tls.certFile !== undefined ? { certFile: tls.certFile } : {}),
            ...(tls.keyFile !== undefined ? { keyFile: tls.keyFile } : {}),
          },
        }
      : {}),
  };
}
