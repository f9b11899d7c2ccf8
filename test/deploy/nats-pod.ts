import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createUser } from "@nats-io/nkeys";
import {
  createTestCertificates,
  ensureBinaries,
  findFreePort,
  waitUntilAccepting,
} from "../harness/index.js";
import { materializeMounts, type PodFiles, type SecretContents } from "./pod-files.js";
import { type Container, findContainer, findTemplate, type PodTemplate } from "./pod-templates.js";
import type { KubeObject } from "./render-overlay.js";

/** The NATS StatefulSet and its server container, as rendered. */
export function natsWorkload(objects: readonly KubeObject[]): {
  template: PodTemplate;
  container: Container;
} {
  const template = findTemplate(objects, "StatefulSet", "latchkey-nats");
  return { template, container: findContainer(template, "nats") };
}

/** Real credentials and certificates for the Secrets the NATS manifests name, made for one test. */
export interface NatsTestSecrets {
  /** Contents of every Secret, keyed as the manifests name them. */
  readonly secrets: SecretContents;
  /** Local files: each role's seed, and the CA (for clients made by hand). */
  readonly tokenServiceSeedFile: string;
  readonly verifierSeedFile: string;
  readonly caFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

/**
 * Makes what deploy/README.md ("NATS: credentials and TLS") tells an operator to make:
 * an nkey per role and a CA-signed certificate, as the Secrets latchkey-nats-users,
 * latchkey-nats-token-service, latchkey-nats-verifier and latchkey-nats-tls.
 */
export async function createNatsTestSecrets(dir: string): Promise<NatsTestSecrets> {
  await mkdir(dir, { recursive: true });
  const certs = await createTestCertificates(dir);
  const text = (path: string) => readFile(path, "utf8");
  const tokenService = createUser();
  const verifier = createUser();
  const seed = (pair: typeof tokenService) => new TextDecoder().decode(pair.getSeed());
  const tokenServiceSeedFile = join(dir, "token-service.seed");
  const verifierSeedFile = join(dir, "verifier.seed");
  await writeFile(tokenServiceSeedFile, `${seed(tokenService)}\n`);
  await writeFile(verifierSeedFile, `${seed(verifier)}\n`);
  return {
    secrets: {
      "latchkey-nats-users": {
        "token-service.pub": tokenService.getPublicKey(),
        "verifier.pub": verifier.getPublicKey(),
      },
      "latchkey-nats-token-service": { "nkey.seed": `${seed(tokenService)}\n` },
      "latchkey-nats-verifier": { "nkey.seed": `${seed(verifier)}\n` },
      "latchkey-nats-tls": {
        "ca.crt": await text(certs.caFile),
        "tls.crt": await text(certs.certFile),
        "tls.key": await text(certs.keyFile),
      },
    },
    tokenServiceSeedFile,
    verifierSeedFile,
    caFile: certs.caFile,
    clientCertFile: certs.clientCertFile,
    clientKeyFile: certs.clientKeyFile,
  };
}

/** Ports of one server on loopback. */
export interface NatsPodPorts {
  readonly client: number;
  readonly cluster: number;
  readonly monitor: number;
}

/** A NATS pod of the rendered StatefulSet, laid out to run on this machine. */
export interface PreparedNatsPod {
  readonly podName: string;
  readonly ports: NatsPodPorts;
  /** `nats://127.0.0.1:<client port>`. */
  readonly url: string;
  /** nats-server's arguments: the container's args, paths made local. */
  readonly args: readonly string[];
  /** The container's environment, as the kubelet would build it, and nothing else. */
  readonly env: Readonly<Record<string, string>>;
  /** The mounts and path mapping. */
  readonly files: PodFiles;
  /** The preStop exec command, made local (the image's /nats-server is this machine's). */
  readonly preStop: readonly string[] | undefined;
}

function portNamed(container: Container, name: string): number {
  const port = container.ports?.find((candidate) => candidate.name === name)?.containerPort;
  if (port === undefined) throw new Error(`${container.name} has no port ${name}`);
  return port;
}

interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: {
    readonly fieldRef?: { readonly fieldPath: string };
    readonly secretKeyRef?: { readonly name: string; readonly key: string; readonly optional?: boolean };
  };
}

/** The container's env entries, resolved as the kubelet would for pod `podName`. */
function containerEnv(container: Container, podName: string, secrets: SecretContents) {
  const env: Record<string, string> = {};
  for (const variable of (container.env ?? []) as readonly EnvVar[]) {
    const { fieldRef, secretKeyRef } = variable.valueFrom ?? {};
    if (fieldRef !== undefined) {
      const fields: Record<string, string> = { "metadata.name": podName, "metadata.namespace": "latchkey" };
      const value = fields[fieldRef.fieldPath];
      if (value === undefined) throw new Error(`no stand-in for fieldRef ${fieldRef.fieldPath}`);
      env[variable.name] = value;
    } else if (secretKeyRef !== undefined) {
      const value = secrets[secretKeyRef.name]?.[secretKeyRef.key];
      if (value === undefined && secretKeyRef.optional !== true) {
        throw new Error(`${variable.name}: Secret ${secretKeyRef.name} key ${secretKeyRef.key} not given`);
      }
      if (value !== undefined) env[variable.name] = value;
    } else if (variable.value !== undefined) {
      env[variable.name] = variable.value;
    }
  }
  return env;
}

/**
 * Lays out pod `podName` of the rendered NATS StatefulSet in `dir`: its mounts (the
 * rendered ConfigMap, the given Secrets), its environment, and its config with only
 * what loopback needs rewritten: listen addresses (the container's named ports, bound
 * to 127.0.0.1), route hosts (`routePorts` maps each pod to its cluster port) and
 * mounted paths. Everything else is the rendered config as it is.
 */
export async function prepareNatsPod(
  objects: readonly KubeObject[],
  options: {
    podName: string;
    dir: string;
    secrets: SecretContents;
    ports?: NatsPodPorts;
    routePorts?: Readonly<Record<string, number>>;
  },
): Promise<PreparedNatsPod> {
  const { template, container } = natsWorkload(objects);
  const { podName, dir, secrets } = options;
  const ports = options.ports ?? {
    client: await findFreePort(),
    cluster: await findFreePort(),
    monitor: await findFreePort(),
  };
  const files = await materializeMounts(template, container, objects, secrets, dir);
  const args = ((container as { args?: string[] }).args ?? []).map((arg) => files.localize(arg));
  const configIndex = args.findIndex((arg) => arg === "--config" || arg === "-c");
  const configFile = args[configIndex + 1];
  if (configIndex < 0 || configFile === undefined) throw new Error("the nats container names no --config");
  const serviceName = (template.owner.spec as { serviceName: string }).serviceName;
  const [client, cluster, monitor] = ["client", "cluster", "monitor"].map((name) =>
    portNamed(container, name),
  );
  const config = (await readFile(configFile, "utf8"))
    .replace(new RegExp(`^port: ${client}$`, "m"), `listen: 127.0.0.1:${ports.client}`)
    .replace(new RegExp(`^http_port: ${monitor}$`, "m"), `http: 127.0.0.1:${ports.monitor}`)
    .replace(new RegExp(`^(\\s+)port: ${cluster}$`, "m"), `$1listen: 127.0.0.1:${ports.cluster}`)
    .replace(new RegExp(`nats://([a-z0-9-]+)\\.${serviceName}:${cluster}`, "g"), (_, pod: string) => {
      const port = options.routePorts?.[pod];
      if (port === undefined) throw new Error(`route to ${pod}, which is not a server of this test`);
      return `nats://127.0.0.1:${port}`;
    });
  await writeFile(configFile, files.localize(config));
  const lifecycle = (container as { lifecycle?: { preStop?: { exec?: { command: string[] } } } }).lifecycle;
  const natsServer = await natsServerPath();
  return {
    podName,
    ports,
    url: `nats://127.0.0.1:${ports.client}`,
    args,
    env: containerEnv(container, podName, secrets),
    files,
    preStop: lifecycle?.preStop?.exec?.command.map((part) =>
      part === "/nats-server" ? natsServer : files.localize(part),
    ),
  };
}

async function natsServerPath(): Promise<string> {
  return (await ensureBinaries()).natsServer;
}

/** `nats-server -t`: whether the prepared pod's config parses and its files load; the output when not. */
export async function validateNatsPod(pod: PreparedNatsPod): Promise<{ ok: boolean; output: string }> {
  const result = spawnSync(await natsServerPath(), [...pod.args, "-t"], {
    env: { ...pod.env },
    encoding: "utf8",
  });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

/** A running nats-server of a prepared pod. */
export interface RunningNatsPod {
  readonly pod: PreparedNatsPod;
  /** What the server printed so far (the tail). */
  output(): string;
  /** Whether the process is still running. */
  readonly running: boolean;
  /** Resolves when the process exits. */
  readonly exited: Promise<void>;
  /** Sends a signal. */
  signal(name: NodeJS.Signals): void;
  /** Kills the server and waits for it. */
  kill(): Promise<void>;
}

/**
 * Starts the prepared pod's nats-server with exactly its environment (no inherited
 * variables: a setting the manifest does not give, the server does not get) and waits
 * for its client port. With `waitForClients: false` it returns at once (cluster members
 * start together).
 */
export async function startNatsPod(pod: PreparedNatsPod, waitForClients = true): Promise<RunningNatsPod> {
  const child: ChildProcess = spawn(await natsServerPath(), [...pod.args], {
    env: { ...pod.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let running = true;
  const collect = (chunk: string) => {
    output = (output + chunk).slice(-16_384);
  };
  child.stdout?.setEncoding("utf8").on("data", collect);
  child.stderr?.setEncoding("utf8").on("data", collect);
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      running = false;
      resolve();
    });
  });
  const killNow = () => child.kill("SIGKILL");
  process.once("exit", killNow);
  const handle: RunningNatsPod = {
    pod,
    output: () => output,
    get running() {
      return running;
    },
    exited,
    signal: (name) => child.kill(name),
    async kill() {
      process.off("exit", killNow);
      if (running) child.kill("SIGKILL");
      await exited;
    },
  };
  if (waitForClients) {
    try {
      await waitUntilAccepting(pod.ports.client, 15_000, () => !running);
    } catch (error) {
      await handle.kill();
      throw new Error(`${pod.podName} did not start: ${(error as Error).message}\n${output}`);
    }
  }
  return handle;
}
