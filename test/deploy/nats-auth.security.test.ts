// Who may do what on NATS, shown on a real nats-server started from the dev overlay's
// rendered config (auth.conf's users and permissions, TLS with certificates made here by
// openssl): the token-service role publishes and keeps the stream, the verifier role
// reads and acks and nothing more, and nobody else gets in.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { checkNatsClientFiles } from "@latchkey/config";
import {
  createNatsKeyEventBus,
  KEY_EVENTS_STREAM,
  type NatsKeyEventBus,
  TOKEN_SERVICE_INBOX_PREFIX,
  USAGE_CONSUMER,
  USAGE_STREAM,
  type UsageDelivery,
} from "@latchkey/events";
import {
  KeyEventSchema,
  KeyEventType,
  OutboxCurrencyRequestSchema,
  OutboxCurrencySchema,
  UsageReportSchema,
  VerifierAckSchema,
} from "@latchkey/proto";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { createUser } from "@nats-io/nkeys";
import {
  connect,
  type NatsConnection,
  type NodeConnectionOptions,
  nkeyAuthenticator,
  PermissionViolationError,
} from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSidecarConfig } from "../../services/sidecar/src/config.js";
import { loadTokenServiceConfig } from "../../services/token-service/src/config.js";
import { containerEnvironment } from "./container-environment.js";
import {
  createNatsTestSecrets,
  type NatsTestSecrets,
  prepareNatsPod,
  type RunningNatsPod,
  startNatsPod,
} from "./nats-pod.js";
import { materializeMounts } from "./pod-files.js";
import { findContainer, findTemplate } from "./pod-templates.js";
import { renderOverlay } from "./render-overlay.js";

const objects = renderOverlay("dev");
let dir: string;
let secrets: NatsTestSecrets;
let server: RunningNatsPod;
const opened: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "latchkey-nats-auth-"));
  secrets = await createNatsTestSecrets(join(dir, "secrets"));
  const pod = await prepareNatsPod(objects, {
    podName: "latchkey-nats-0",
    dir: join(dir, "pod"),
    secrets: secrets.secrets,
  });
  server = await startNatsPod(pod);
});

afterAll(async () => {
  for (const handle of opened.reverse()) await handle.close().catch(() => {});
  await server?.kill();
  await rm(dir, { recursive: true, force: true });
});

async function seed(file: string): Promise<Uint8Array> {
  return new TextEncoder().encode((await readFile(file, "utf8")).trim());
}

/** A plain nats client with `options`, closed after the file. */
async function client(options: Partial<NodeConnectionOptions>): Promise<NatsConnection> {
  const nc = await connect({ servers: server.pod.url, reconnect: false, ...options });
  opened.push({ close: () => nc.close() });
  return nc;
}

async function asTokenService(): Promise<NatsConnection> {
  return client({
    authenticator: nkeyAuthenticator(await seed(secrets.tokenServiceSeedFile)),
    tls: { caFile: secrets.caFile },
    inboxPrefix: TOKEN_SERVICE_INBOX_PREFIX,
  });
}

async function asVerifier(): Promise<NatsConnection> {
  return client({
    authenticator: nkeyAuthenticator(await seed(secrets.verifierSeedFile)),
    tls: { caFile: secrets.caFile },
  });
}

/**
 * The permission violations the server reports to `nc` within `ms` milliseconds,
 * as `"<publish|subscription> <subject>"`.
 */
async function violationsWithin(nc: NatsConnection, ms: number, act: () => void): Promise<string[]> {
  const violations: string[] = [];
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "error" && status.error instanceof PermissionViolationError) {
        violations.push(`${status.error.operation} ${status.error.subject}`);
      }
    }
  })();
  act();
  await sleep(ms);
  return violations;
}

/** Retries `ask` until it resolves: the answering subscription may not have reached the server yet. */
async function waitForAnswer<T>(ask: () => Promise<T>): Promise<T> {
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      return await ask();
    } catch (error) {
      if (Date.now() > until) throw error;
      await sleep(50);
    }
  }
}

function bus(options: Parameters<typeof createNatsKeyEventBus>[0]): NatsKeyEventBus {
  const created = createNatsKeyEventBus({ requestTimeoutMs: 2_000, ...options });
  opened.push(created);
  return created;
}

/** The event bus as the token-service role connects it. */
const tokenServiceBus = () =>
  bus({
    servers: server.pod.url,
    nkeySeedFile: secrets.tokenServiceSeedFile,
    tls: { caFile: secrets.caFile },
    inboxPrefix: TOKEN_SERVICE_INBOX_PREFIX,
  });

/** The event bus as the verifier role connects it. */
const verifierBus = () =>
  bus({ servers: server.pod.url, nkeySeedFile: secrets.verifierSeedFile, tls: { caFile: secrets.caFile } });

const revoked = (keyId: string) =>
  create(KeyEventSchema, { teamId: "team_a", keyId, type: KeyEventType.REVOKED });

describe("NATS from the rendered dev config: the token-service role", () => {
  it("creates, updates and reads the stream, and publishes key events to it", async () => {
    const tokenService = tokenServiceBus();
    expect(await tokenService.ensureStream()).toEqual({ created: true });
    expect(await tokenService.ensureStream()).toEqual({ created: false });
    const { sequence } = await tokenService.publish(revoked("key_ts"), "ts-1");
    expect(await tokenService.lastSequence()).toBe(sequence);
  });

  it("cannot purge or delete the stream either: nothing in Latchkey needs to", async () => {
    const jsm = await jetstreamManager(await asTokenService(), { timeout: 1_000 });
    await expect(jsm.streams.purge(KEY_EVENTS_STREAM)).rejects.toThrow();
    await expect(jsm.streams.delete(KEY_EVENTS_STREAM)).rejects.toThrow();
    expect((await jsm.streams.info(KEY_EVENTS_STREAM)).state.messages).toBeGreaterThan(0);
  });
});

describe("NATS from the rendered dev config: the verifier role", () => {
  it("follows key events with the event bus and acks them to the token-service", async () => {
    const tokenService = tokenServiceBus();
    await tokenService.ensureStream();
    const acks: bigint[] = [];
    const heard = tokenService.onVerifierMessage((message) => {
      if (message.kind === "ack") acks.push(message.ack.appliedSequence);
    });
    opened.push(heard);
    const verifier = verifierBus();
    const received: string[] = [];
    const subscription = await verifier.subscribe({
      onEvent: ({ sequence, event }) => {
        received.push(event.keyId);
        verifier.sendAck(create(VerifierAckSchema, { verifierId: "v_1", appliedSequence: BigInt(sequence) }));
      },
    });
    opened.push(subscription);
    const { sequence } = await tokenService.publish(revoked("key_v"), "v-1");
    const until = Date.now() + 10_000;
    while ((received.length === 0 || acks.length === 0) && Date.now() < until) await sleep(25);
    expect(received).toEqual(["key_v"]);
    expect(acks).toEqual([BigInt(sequence)]);
  });

  it("is refused publishing key events, core or JetStream, and nothing reaches the stream", async () => {
    const jsm = await jetstreamManager(await asTokenService());
    const before = (await jsm.streams.info(KEY_EVENTS_STREAM)).state.last_seq;
    const verifier = await asVerifier();
    const violations = violationsWithin(verifier, 1_500, () =>
      verifier.publish("latchkey.keys.team_a.revoked", new Uint8Array([1])),
    );
    const js = jetstream(verifier, { timeout: 1_000 });
    await expect(js.publish("latchkey.keys.team_a.enabled", new Uint8Array([2]))).rejects.toThrow();
    expect(await violations).toContain("publish latchkey.keys.team_a.revoked");
    expect((await jsm.streams.info(KEY_EVENTS_STREAM)).state.last_seq).toBe(before);
  });

  it("is refused purging, deleting or changing the stream, which keeps its events", async () => {
    const jsm = await jetstreamManager(await asVerifier(), { timeout: 1_000 });
    const info = await jsm.streams.info(KEY_EVENTS_STREAM);
    await expect(jsm.streams.purge(KEY_EVENTS_STREAM)).rejects.toThrow();
    await expect(jsm.streams.delete(KEY_EVENTS_STREAM)).rejects.toThrow();
    await expect(jsm.streams.deleteMessage(KEY_EVENTS_STREAM, info.state.last_seq)).rejects.toThrow();
    await expect(jsm.streams.update(KEY_EVENTS_STREAM, { max_msgs: 1 })).rejects.toThrow();
    const after = await (await jetstreamManager(await asTokenService())).streams.info(KEY_EVENTS_STREAM);
    expect(after.state.messages).toBe(info.state.messages);
    expect(after.config.max_msgs).toBe(info.config.max_msgs);
  });

  it("cannot hear or answer what is addressed to the token-service", async () => {
    const tokenService = await asTokenService();
    const addressed = `${TOKEN_SERVICE_INBOX_PREFIX}.reply`;
    const delivered: string[] = [];
    tokenService.subscribe(addressed, {
      callback: (_, message) => {
        delivered.push(message.subject);
      },
    });
    tokenService.subscribe("latchkey.verifiers.>", {
      callback: (_, message) => {
        delivered.push(message.subject);
      },
    });
    await tokenService.flush();
    const verifier = await asVerifier();
    const refused: string[] = [];
    const onError = (error: Error | null) => {
      if (error instanceof PermissionViolationError) refused.push(`${error.operation} ${error.subject}`);
    };
    const reported = await violationsWithin(verifier, 1_500, () => {
      verifier.subscribe(`${TOKEN_SERVICE_INBOX_PREFIX}.>`, { callback: onError });
      verifier.subscribe("latchkey.verifiers.>", { callback: onError });
      verifier.publish(addressed, new Uint8Array([1]));
    });
    expect(refused.sort()).toEqual([
      `subscription ${TOKEN_SERVICE_INBOX_PREFIX}.>`,
      "subscription latchkey.verifiers.>",
    ]);
    expect(reported).toContain(`publish ${addressed}`);
    // Its own heartbeats do reach the token-service; the forged reply does not.
    verifier.publish("latchkey.verifiers.heartbeat.v_1", new Uint8Array([1]));
    await verifier.flush();
    await sleep(200);
    expect(delivered).toEqual(["latchkey.verifiers.heartbeat.v_1"]);
  });

  it("asks the token-service whether the outbox is published, and cannot answer another verifier's question", async () => {
    const tokenService = tokenServiceBus();
    await tokenService.ensureStream();
    const answering = tokenService.onOutboxCurrencyRequest((question) =>
      question.respond(create(OutboxCurrencySchema, { publishedThroughSequence: 7n, replicaId: "ts_a" })),
    );
    opened.push(answering);
    const verifier = verifierBus();
    await verifier.connected();
    const answer = await waitForAnswer(() =>
      verifier.requestOutboxCurrency(create(OutboxCurrencyRequestSchema, { verifierId: "v_q" }), 2_000),
    );
    expect(answer).toMatchObject({ publishedThroughSequence: 7n, replicaId: "ts_a" });
    // Another verifier can neither hear the questions nor put a forged answer in an inbox.
    const other = await asVerifier();
    const refused: string[] = [];
    const reported = await violationsWithin(other, 1_500, () => {
      other.subscribe("latchkey.verifiers.currency.*", {
        callback: (error) => {
          if (error instanceof PermissionViolationError) refused.push(`${error.operation} ${error.subject}`);
        },
      });
      other.publish("_INBOX.forged.1", new Uint8Array([1]));
    });
    expect(refused).toEqual(["subscription latchkey.verifiers.currency.*"]);
    expect(reported).toContain("publish _INBOX.forged.1");
  });

  it("shares rate-limit counts with the other sidecars on latchkey.ratelimit.counts.* and nowhere else", async () => {
    const [listener, sender] = await Promise.all([asVerifier(), asVerifier()]);
    const delivered: string[] = [];
    listener.subscribe("latchkey.ratelimit.counts.*", {
      callback: (_, message) => {
        delivered.push(message.subject);
      },
    });
    await listener.flush();
    const reported = await violationsWithin(sender, 1_500, () => {
      sender.publish("latchkey.ratelimit.counts.s_1", new Uint8Array([1]));
      sender.publish("latchkey.ratelimit.other", new Uint8Array([1]));
    });
    await sleep(200);
    expect(delivered).toEqual(["latchkey.ratelimit.counts.s_1"]);
    expect(reported).toContain("publish latchkey.ratelimit.other");
  });
});

describe("NATS from the rendered dev config: everyone else", () => {
  it("refuses a client without credentials, and one with a key it does not know", async () => {
    await expect(client({ tls: { caFile: secrets.caFile } })).rejects.toMatchObject({
      name: "AuthorizationError",
    });
    const stranger = createUser().getSeed();
    await expect(
      client({ tls: { caFile: secrets.caFile }, authenticator: nkeyAuthenticator(stranger) }),
    ).rejects.toMatchObject({
      name: "AuthorizationError",
    });
  });

  it("refuses plaintext, and a client that does not trust the server's CA", async () => {
    const answer = await new Promise<string>((resolve) => {
      const socket = connectTcp({ host: "127.0.0.1", port: server.pod.ports.client });
      let received = "";
      socket.setEncoding("utf8").on("data", (chunk: string) => {
        received += chunk;
        if (received.startsWith("INFO ") && received.includes("\r\n") && !received.includes("CONNECT-SENT")) {
          received += "CONNECT-SENT";
          socket.write('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');
        }
      });
      socket.on("close", () => resolve(received));
      socket.setTimeout(5_000, () => socket.destroy());
    });
    expect(answer).toMatch(/"tls_required":true/);
    // The server waits for a TLS handshake: a plaintext CONNECT gets no PONG, only a closed socket.
    expect(answer).not.toMatch(/PONG|\+OK/);
    await expect(
      client({ authenticator: nkeyAuthenticator(await seed(secrets.verifierSeedFile)) }),
    ).rejects.toThrow();
  });
});

describe("overlay dev: the services connect as the role their manifests give them", () => {
  it("wires the token-service and the example app's sidecar to their own NATS users, over TLS", async () => {
    const tokenServiceTemplate = findTemplate(objects, "Deployment", "latchkey-token-service");
    const tokenServiceContainer = findContainer(tokenServiceTemplate, "token-service");
    const tokenServiceFiles = await materializeMounts(
      tokenServiceTemplate,
      tokenServiceContainer,
      objects,
      secrets.secrets,
      join(dir, "token-service"),
    );
    const tokenServiceConfig = loadTokenServiceConfig(
      containerEnvironment(tokenServiceContainer, objects, "dev"),
    );
    const appTemplate = findTemplate(objects, "Deployment", "latchkey-example-app");
    const sidecarContainer = findContainer(appTemplate, "latchkey-sidecar");
    const sidecarFiles = await materializeMounts(
      appTemplate,
      sidecarContainer,
      objects,
      secrets.secrets,
      join(dir, "sidecar"),
    );
    const sidecarConfig = loadSidecarConfig(containerEnvironment(sidecarContainer, objects, "dev"));
    const local = (
      files: typeof tokenServiceFiles,
      config: typeof sidecarConfig | typeof tokenServiceConfig,
    ) =>
      checkNatsClientFiles({
        natsNkeySeedFile: config.natsNkeySeedFile && files.localPath(config.natsNkeySeedFile),
        natsTlsCa: config.natsTlsCa && files.localPath(config.natsTlsCa),
      });
    const tokenServiceNats = local(tokenServiceFiles, tokenServiceConfig);
    const sidecarNats = local(sidecarFiles, sidecarConfig);
    // Both have credentials and TLS; each holds its own role's seed.
    expect(tokenServiceNats.tls?.caFile).toBeDefined();
    expect(sidecarNats.tls?.caFile).toBeDefined();
    expect(await readFile(tokenServiceNats.nkeySeedFile ?? "", "utf8")).toBe(
      await readFile(secrets.tokenServiceSeedFile, "utf8"),
    );
    expect(await readFile(sidecarNats.nkeySeedFile ?? "", "utf8")).toBe(
      await readFile(secrets.verifierSeedFile, "utf8"),
    );

    const tokenService = bus({
      servers: server.pod.url,
      ...tokenServiceNats,
      inboxPrefix: TOKEN_SERVICE_INBOX_PREFIX,
    });
    const sidecar = bus({ servers: server.pod.url, ...sidecarNats });
    await tokenService.ensureStream();
    const received: string[] = [];
    opened.push(await sidecar.subscribe({ onEvent: ({ event }) => void received.push(event.keyId) }));
    await tokenService.publish(revoked("key_wired"), "wired-1");
    const until = Date.now() + 10_000;
    while (received.length === 0 && Date.now() < until) await sleep(25);
    expect(received).toEqual(["key_wired"]);
    // The sidecar's user is the verifier's: it may not publish key events.
    await expect(sidecar.publish(revoked("key_forged"), "forged-1")).rejects.toThrow();
  });
});

describe("NATS from the rendered dev config: usage reports", () => {
  it("go from the verifier role to the token-service role's durable consumer, and to no one else", async () => {
    const tokenService = tokenServiceBus();
    expect((await tokenService.ensureUsageStream()).created).toBe(true);
    const verifier = verifierBus();
    const report = create(UsageReportSchema, { verifierId: "v_usage", sequence: 1n });
    expect(await verifier.publishUsage(report, "v_usage-1")).toEqual({ duplicate: false });
    const received: UsageDelivery[] = [];
    opened.push(await tokenService.consumeUsage(async (delivery) => void received.push(delivery)));
    const until = Date.now() + 10_000;
    while (received.length === 0 && Date.now() < until) await sleep(25);
    expect(received.map((d) => d.messageId)).toEqual(["v_usage-1"]);
    // A verifier cannot read the reports (nor make a consumer to), nor change the stream.
    const jsm = await jetstreamManager(await asVerifier(), { timeout: 1_000 });
    await expect(jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER)).rejects.toThrow();
    await expect(jsm.consumers.add(USAGE_STREAM, { durable_name: "thief" })).rejects.toThrow();
    await expect(jsm.streams.purge(USAGE_STREAM)).rejects.toThrow();
  });
});
