// The rendered NATS manifests run: each overlay's config passes `nats-server -t` with the
// environment and files its pod gets, the production overlay's three servers form a
// JetStream cluster on loopback, and the preStop hook puts a server in lame duck mode.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { createNatsKeyEventBus, KEY_EVENTS_STREAM, TOKEN_SERVICE_INBOX_PREFIX } from "@latchkey/events";
import { KeyEventSchema, KeyEventType } from "@latchkey/proto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, nkeyAuthenticator } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findFreePort, startNats, waitUntilAccepting } from "../harness/index.js";
import { runCommand } from "../harness/run-command.js";
import {
  createNatsTestSecrets,
  type NatsTestSecrets,
  natsWorkload,
  prepareNatsPod,
  type RunningNatsPod,
  startNatsPod,
  validateNatsPod,
} from "./nats-pod.js";
import { OVERLAYS, renderOverlay } from "./render-overlay.js";

let dir: string;
let secrets: NatsTestSecrets;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "latchkey-nats-manifests-"));
  secrets = await createNatsTestSecrets(join(dir, "secrets"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Bytes of a Kubernetes memory quantity (256Mi, 1Gi) or a Go one (230MiB). */
function bytes(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|KiB|MiB|GiB)?$/.exec(quantity);
  if (match === null) throw new Error(`cannot read the quantity ${quantity}`);
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[(match[2] ?? "").slice(0, 2)] ?? 1;
  return Number(match[1]) * unit;
}

/** Seconds of a NATS duration setting (`30s`, `1m`) in the config text. */
function durationSetting(config: string, name: string): number {
  const match = new RegExp(`^${name}:\\s*(\\d+)(s|m)\\s*$`, "m").exec(config);
  if (match === null) throw new Error(`the NATS config sets no ${name}`);
  return Number(match[1]) * (match[2] === "m" ? 60 : 1);
}

function renderedNatsConfig(overlay: (typeof OVERLAYS)[number]): string {
  const objects = renderOverlay(overlay);
  const { template } = natsWorkload(objects);
  const volume = (template.spec.volumes ?? []).find((candidate) => candidate.name === "config");
  const configMap = objects.find(
    (object) => object.kind === "ConfigMap" && object.metadata.name === volume?.configMap?.name,
  );
  return (configMap?.data as Record<string, string> | undefined)?.["nats.conf"] ?? "";
}

describe.each(OVERLAYS)("overlay %s: the NATS server's manifests", (overlay) => {
  const objects = renderOverlay(overlay);

  it("give a config that nats-server -t accepts, with the pod's own environment and mounts", async () => {
    const pod = await prepareNatsPod(objects, {
      podName: "latchkey-nats-0",
      dir: join(dir, `validate-${overlay}`),
      secrets: secrets.secrets,
      routePorts: { "latchkey-nats-0": 1, "latchkey-nats-1": 2, "latchkey-nats-2": 3 },
    });
    const result = await validateNatsPod(pod);
    expect(result.output).toContain("is valid");
    expect(result.ok).toBe(true);
  });

  it("set GOMEMLIMIT to about 90 % of the container's memory limit", () => {
    const { container } = natsWorkload(objects);
    const limit = String(container.resources?.limits?.memory ?? "");
    const env = (container.env ?? []) as readonly { name: string; value?: string }[];
    const goMemLimit = env.find((variable) => variable.name === "GOMEMLIMIT")?.value ?? "";
    const ratio = bytes(goMemLimit) / bytes(limit);
    expect(ratio).toBeGreaterThanOrEqual(0.85);
    expect(ratio).toBeLessThanOrEqual(0.95);
  });

  it("give lame duck mode the time it needs before the kubelet kills the server", () => {
    const config = renderedNatsConfig(overlay);
    const { template } = natsWorkload(objects);
    const grace = (template.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds;
    const lameDuck =
      durationSetting(config, "lame_duck_grace_period") + durationSetting(config, "lame_duck_duration");
    expect(grace ?? 30).toBeGreaterThan(lameDuck);
  });
});

describe("overlay dev: the NATS preStop hook", () => {
  const objects = renderOverlay("dev");
  let server: RunningNatsPod;

  beforeAll(async () => {
    const pod = await prepareNatsPod(objects, {
      podName: "latchkey-nats-0",
      dir: join(dir, "lame-duck"),
      secrets: secrets.secrets,
    });
    server = await startNatsPod(pod);
  });

  afterAll(async () => {
    await server?.kill();
  });

  it("puts the server in lame duck mode, which the SIGTERM after it does not cut short", async () => {
    const { pod } = server;
    expect(pod.preStop).toBeDefined();
    const client = await connect({
      servers: pod.url,
      authenticator: nkeyAuthenticator(await seedOf(secrets.verifierSeedFile)),
      tls: { caFile: secrets.caFile },
      reconnect: false,
    });
    const lameDuck = (async () => {
      for await (const status of client.status()) if (status.type === "ldm") return true;
      return false;
    })();
    const [command, ...args] = pod.preStop ?? [];
    await runCommand(command ?? "", args);
    expect(await Promise.race([lameDuck, sleep(5_000).then(() => false)])).toBe(true);
    // The kubelet sends SIGTERM once preStop returns; the server keeps draining.
    server.signal("SIGTERM");
    await sleep(1_500);
    expect(server.running).toBe(true);
    expect(server.output()).toMatch(/lame duck mode/i);
    await client.close();
  });
});

async function seedOf(file: string): Promise<Uint8Array> {
  return new TextEncoder().encode((await readFile(file, "utf8")).trim());
}

describe("overlay production: the three NATS servers on loopback", () => {
  const objects = renderOverlay("production");
  const servers: RunningNatsPod[] = [];

  beforeAll(async () => {
    const pods = ["latchkey-nats-0", "latchkey-nats-1", "latchkey-nats-2"];
    const ports = new Map<string, { client: number; cluster: number; monitor: number }>();
    for (const pod of pods) {
      ports.set(pod, {
        client: await findFreePort(),
        cluster: await findFreePort(),
        monitor: await findFreePort(),
      });
    }
    const routePorts = Object.fromEntries([...ports].map(([pod, { cluster }]) => [pod, cluster]));
    const prepared = await Promise.all(
      pods.map((podName) =>
        prepareNatsPod(objects, {
          podName,
          dir: join(dir, `cluster-${podName}`),
          secrets: secrets.secrets,
          ports: ports.get(podName),
          routePorts,
        }),
      ),
    );
    // All at once, as podManagementPolicy: Parallel starts them.
    for (const pod of prepared) servers.push(await startNatsPod(pod, false));
    for (const server of servers) {
      await waitUntilAccepting(server.pod.ports.client, 20_000, () => !server.running).catch((error) => {
        throw new Error(`${server.pod.podName}: ${(error as Error).message}\n${server.output()}`);
      });
    }
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.kill()));
  });

  async function monitor(server: RunningNatsPod, path: string): Promise<Record<string, unknown>> {
    const response = await fetch(`http://127.0.0.1:${server.pod.ports.monitor}${path}`);
    return (await response.json()) as Record<string, unknown>;
  }

  it("routes every server to the other two over mutual TLS and elects a JetStream meta leader", async () => {
    const deadline = Date.now() + 20_000;
    let state: { routes: number[]; leaders: unknown[]; sizes: unknown[] } = {
      routes: [],
      leaders: [],
      sizes: [],
    };
    while (Date.now() < deadline) {
      const routez = await Promise.all(servers.map((server) => monitor(server, "/routez")));
      const jsz = await Promise.all(servers.map((server) => monitor(server, "/jsz")));
      const meta = jsz.map(
        (info) => info.meta_cluster as { leader?: string; cluster_size?: number } | undefined,
      );
      state = {
        routes: routez.map((info) => Number(info.num_routes)),
        leaders: meta.map((info) => info?.leader),
        sizes: meta.map((info) => info?.cluster_size),
      };
      if (state.routes.every((count) => count === 2) && state.leaders.every((leader) => leader)) break;
      await sleep(250);
    }
    expect(state.routes).toEqual([2, 2, 2]);
    expect(state.sizes).toEqual([3, 3, 3]);
    expect(new Set(state.leaders).size).toBe(1);
  });

  it("lets no server join the cluster without a certificate from its CA", async () => {
    const [first] = servers as [RunningNatsPod];
    const intruderPort = await findFreePort();
    const intruder = await startNats({
      args: [
        "--cluster_name",
        "latchkey",
        "--cluster",
        `nats://127.0.0.1:${await findFreePort()}`,
        "--routes",
        `nats://127.0.0.1:${first.pod.ports.cluster}`,
        "--name",
        "intruder",
        "-m",
        String(intruderPort),
      ],
    });
    try {
      await sleep(2_000);
      const routez = await fetch(`http://127.0.0.1:${intruderPort}/routez`).then(
        (response) => response.json() as Promise<{ num_routes: number }>,
      );
      expect(routez.num_routes).toBe(0);
      expect(Number((await monitor(first, "/routez")).num_routes)).toBe(2);
    } finally {
      await intruder.dispose();
    }
  });

  it("keeps key events on all three servers and serves them from any of them", async () => {
    const [first, , third] = servers as [RunningNatsPod, RunningNatsPod, RunningNatsPod];
    const tokenService = createNatsKeyEventBus({
      servers: first.pod.url,
      name: "token-service",
      nkeySeedFile: secrets.tokenServiceSeedFile,
      tls: { caFile: secrets.caFile },
      inboxPrefix: TOKEN_SERVICE_INBOX_PREFIX,
      replicas: 3,
    });
    const verifier = createNatsKeyEventBus({
      servers: third.pod.url,
      name: "verifier",
      nkeySeedFile: secrets.verifierSeedFile,
      tls: { caFile: secrets.caFile },
    });
    try {
      // The meta leader may still be settling: ask until the stream exists.
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          await tokenService.ensureStream();
          break;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await sleep(250);
        }
      }
      const event = create(KeyEventSchema, { teamId: "team_a", keyId: "key_a", type: KeyEventType.REVOKED });
      const { sequence } = await tokenService.publish(event, "cluster-1");
      const received: string[] = [];
      const subscription = await verifier.subscribe(
        { onEvent: ({ event }) => void received.push(event.keyId) },
        { afterSequence: sequence - 1 },
      );
      const until = Date.now() + 10_000;
      while (received.length === 0 && Date.now() < until) await sleep(50);
      expect(received).toEqual(["key_a"]);
      await subscription.close();

      const nc = await connect({
        servers: first.pod.url,
        authenticator: nkeyAuthenticator(await seedOf(secrets.tokenServiceSeedFile)),
        tls: { caFile: secrets.caFile },
        inboxPrefix: TOKEN_SERVICE_INBOX_PREFIX,
      });
      const info = await (await jetstreamManager(nc)).streams.info(KEY_EVENTS_STREAM);
      await nc.close();
      expect(info.config.num_replicas).toBe(3);
      expect(info.cluster?.leader).toBeDefined();
      expect(info.cluster?.replicas?.length).toBe(2);
    } finally {
      await verifier.close();
      await tokenService.close();
    }
  });
});
