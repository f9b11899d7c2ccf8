// The probes of the rendered manifests, asked of the real services: the token-service
// started with each overlay's rendered environment (its grpc.health.v1 answers for each
// probe's `service`), and the sidecar started with its rendered environment and policy
// (each probe path GET on its admin listener). A probe that names a service the server
// does not register, or a path the sidecar does not serve, fails here as it would keep a
// pod from ever becoming Ready (or get it killed) in a cluster.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@latchkey/proto/grpc";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSidecarConfig } from "../../services/sidecar/src/config.js";
import { loadTokenServiceConfig } from "../../services/token-service/src/config.js";
import {
  startTokenService,
  type TokenServiceHandle,
} from "../../services/token-service/src/token-service.js";
import { createTestCertificates, freshDatabaseUrl, natsUrl } from "../harness/index.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import { containerEnvironment } from "./container-environment.js";
import { type Container, containersOf, findObject, type PlacedContainer } from "./pod-templates.js";
import { RENDERINGS, type Rendering } from "./renderings.js";

type ProbeName = "startupProbe" | "livenessProbe" | "readinessProbe";
const PROBES: readonly ProbeName[] = ["startupProbe", "livenessProbe", "readinessProbe"];

interface Probe {
  readonly grpc?: { readonly port: number; readonly service?: string };
  readonly httpGet?: { readonly path?: string; readonly port: number | string; readonly scheme?: string };
  readonly tcpSocket?: { readonly port: number | string };
  readonly exec?: unknown;
}

/** The probes of a container, by name. */
function probesOf(container: Container): [ProbeName, Probe][] {
  return PROBES.filter((name) => container[name] !== undefined).map((name) => [
    name,
    container[name] as Probe,
  ]);
}

/** A probe's port as a number (a named port is looked up in the container's ports). */
function portNumber(container: Container, port: number | string): number {
  if (typeof port === "number") return port;
  const found = container.ports?.find((candidate) => candidate.name === port)?.containerPort;
  if (found === undefined) throw new Error(`${container.name} has no port named ${port}`);
  return found;
}

function latchkeyContainers(rendering: Rendering, image: string): PlacedContainer[] {
  return containersOf(rendering.objects).filter(
    ({ container, role }) => role !== "init" && (container.image ?? "").includes(`latchkey/${image}:`),
  );
}

/** The HTTP status of GET `url`, or the error's message. */
async function get(url: string): Promise<number | string> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await response.arrayBuffer();
    return response.status;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * The rendered environment without the files a pod uses to reach NATS, PostgreSQL and the
 * token-service (credentials, CA bundles): this run's own servers stand in for those, and
 * what the files do is tested where it matters (nats-auth.security.test.ts,
 * tls-and-monitoring.test.ts, the token-service's TLS tests). Probes do not depend on them.
 */
function withoutPeerFiles(env: Record<string, string>): Record<string, string> {
  const {
    LATCHKEY_NATS_NKEY_SEED_FILE: _seed,
    LATCHKEY_NATS_TLS_CA: _natsCa,
    LATCHKEY_NATS_TLS_CERT: _natsCert,
    LATCHKEY_NATS_TLS_KEY: _natsKey,
    LATCHKEY_DB_CA_FILE: _dbCa,
    LATCHKEY_TOKEN_SERVICE_CA_FILE: _serviceCa,
    ...rest
  } = env;
  return rest;
}

const withImage = (image: string) =>
  RENDERINGS.filter((rendering) => latchkeyContainers(rendering, image).length > 0);

describe.each(withImage("token-service"))(
  "$name: token-service probes against the running token-service",
  (rendering) => {
    const placed = latchkeyContainers(rendering, "token-service");
    let service: TokenServiceHandle | undefined;
    const dir = mkdtempSync(join(tmpdir(), "lk-probes-"));

    beforeAll(async () => {
      const { container } = placed[0] as PlacedContainer;
      const rendered = withoutPeerFiles(
        containerEnvironment(container, rendering.objects, rendering.overlay),
      );
      // The server's own certificate, where the overlay turns TLS on: the probes must work beside it.
      const certificates =
        rendered.LATCHKEY_TLS_CERT === undefined ? undefined : await createTestCertificates(dir);
      const env: Record<string, string> = {
        ...rendered,
        // Everything as rendered, but on free loopback ports, with this run's servers.
        LATCHKEY_LISTEN: "127.0.0.1:0",
        LATCHKEY_GRPC_LISTEN: "127.0.0.1:0",
        ...(rendered.LATCHKEY_HEALTH_LISTEN === undefined ? {} : { LATCHKEY_HEALTH_LISTEN: "127.0.0.1:0" }),
        ...(rendered.LATCHKEY_METRICS_LISTEN === undefined ? {} : { LATCHKEY_METRICS_LISTEN: "127.0.0.1:0" }),
        ...(certificates === undefined
          ? {}
          : { LATCHKEY_TLS_CERT: certificates.certFile, LATCHKEY_TLS_KEY: certificates.keyFile }),
        DATABASE_URL: await freshDatabaseUrl("probe"),
        NATS_URL: natsUrl(),
        LATCHKEY_MIGRATE_ON_START: "true",
        LATCHKEY_STREAM_REPLICAS: "1",
        LATCHKEY_LOG_LEVEL: "silent",
        LATCHKEY_SHUTDOWN_TIMEOUT_MS: "1000",
      };
      service = await startTokenService(loadTokenServiceConfig(env), { logger: pino({ level: "silent" }) });
    });
    afterAll(async () => {
      await service?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("answers SERVING for every gRPC probe, on the port it probes", async () => {
      const running = service as TokenServiceHandle;
      const answers: string[] = [];
      for (const { container, id } of placed) {
        const config = loadTokenServiceConfig(
          containerEnvironment(container, rendering.objects, rendering.overlay),
        );
        // The rendered port → the port this test's server took for the same listener.
        const ports = new Map([
          [config.grpcListen.port, running.grpcPort],
          [config.listen.port, running.port],
        ]);
        if (config.healthListen !== undefined && running.healthPort !== undefined)
          ports.set(config.healthListen.port, running.healthPort);
        for (const [name, probe] of probesOf(container)) {
          if (probe.grpc === undefined) {
            answers.push(`${id} ${name}: not a gRPC probe (${Object.keys(probe).join(", ")})`);
            continue;
          }
          const port = ports.get(probe.grpc.port);
          if (port === undefined) {
            answers.push(`${id} ${name}: port ${probe.grpc.port} is no listener of the server`);
            continue;
          }
          // The kubelet speaks plaintext gRPC to the port and asks for `service` ("" = the server).
          const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
          const service = probe.grpc.service ?? "";
          try {
            const { status } = await health.check({ service }, { timeoutMs: 2_000 });
            if (status !== ServingStatus.SERVING)
              answers.push(`${id} ${name} "${service}": ${ServingStatus[status]}`);
          } catch (error) {
            answers.push(`${id} ${name} "${service}": ${(error as Error).message}`);
          }
        }
      }
      expect(answers).toEqual([]);
    });
  },
);

describe.each(withImage("sidecar"))("$name: sidecar probes against the running sidecar", (rendering) => {
  const placed = latchkeyContainers(rendering, "sidecar");
  const running: { placed: PlacedContainer; sidecar: SidecarProcess }[] = [];

  beforeAll(async () => {
    for (const entry of placed) {
      const rendered = withoutPeerFiles(
        containerEnvironment(entry.container, rendering.objects, rendering.overlay),
      );
      const config = loadSidecarConfig(rendered);
      // The policy file the pod mounts: the ConfigMap key behind LATCHKEY_POLICY.
      let policy: string | undefined;
      if (config.policy !== undefined) {
        const mount = entry.container.volumeMounts?.find((candidate) =>
          config.policy?.startsWith(`${candidate.mountPath}/`),
        );
        const volume = entry.template.spec.volumes?.find((candidate) => candidate.name === mount?.name);
        const configMap = findObject(rendering.objects, "ConfigMap", volume?.configMap?.name ?? "");
        policy = (configMap.data as Record<string, string>)[
          config.policy.slice((mount?.mountPath.length ?? 0) + 1)
        ];
        if (policy === undefined) throw new Error(`${entry.id}: no policy file at ${config.policy}`);
      }
      const {
        LATCHKEY_SIDECAR_LISTEN: _listen,
        LATCHKEY_SIDECAR_ADMIN_LISTEN: _admin,
        LATCHKEY_POLICY: _policy,
        ...env
      } = rendered;
      const sidecar = await spawnSidecar({
        // Nothing listens there, nor at the token-service URL: readiness must not depend on either.
        upstream: "http://127.0.0.1:9",
        tokenServiceUrl: "http://127.0.0.1:9",
        natsUrl: natsUrl(),
        ...(policy === undefined ? {} : { policy }),
        env: { ...env, LATCHKEY_LOG_LEVEL: "info", LATCHKEY_SHUTDOWN_TIMEOUT_MS: "500" },
      });
      running.push({ placed: entry, sidecar });
    }
  });
  afterAll(async () => {
    await Promise.all(running.map(({ sidecar }) => sidecar.stop()));
  });

  it("answers 2xx/3xx on every probe's path and port", async () => {
    const answers: string[] = [];
    for (const { placed: entry, sidecar } of running) {
      const { container, id } = entry;
      const config = loadSidecarConfig(containerEnvironment(container, rendering.objects, rendering.overlay));
      const ports = new Map([
        [config.adminListen.port, Number(new URL(sidecar.adminUrl).port)],
        [config.listen.port, sidecar.port],
      ]);
      for (const [name, probe] of probesOf(container)) {
        if (probe.httpGet === undefined) {
          answers.push(`${id} ${name}: not an HTTP probe (${Object.keys(probe).join(", ")})`);
          continue;
        }
        const rendered = portNumber(container, probe.httpGet.port);
        const port = ports.get(rendered);
        if (port === undefined) {
          answers.push(`${id} ${name}: port ${rendered} is no listener of the sidecar`);
          continue;
        }
        const path = probe.httpGet.path ?? "/";
        const status = await get(`http://127.0.0.1:${port}${path}`);
        // The kubelet counts 200–399 as success.
        if (typeof status !== "number" || status < 200 || status >= 400)
          answers.push(`${id} ${name} ${path}: ${status}`);
      }
    }
    expect(answers).toEqual([]);
  });
});
