import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadSidecarConfig } from "../../services/sidecar/src/config.js";
import { compilePolicy } from "../../services/sidecar/src/policy/policy.js";
import { loadTokenServiceConfig } from "../../services/token-service/src/config.js";
import { containerEnvironment } from "./container-environment.js";
import {
  type Container,
  findContainer,
  findObject,
  findTemplate,
  type PodTemplate,
} from "./pod-templates.js";
import { type KubeObject, OVERLAYS, renderOverlay } from "./render-overlay.js";

function portNamed(container: Container, name: string): number {
  const port = container.ports?.find((candidate) => candidate.name === name)?.containerPort;
  if (port === undefined) throw new Error(`${container.name} has no port ${name}`);
  return port;
}

/** The Service port behind `http://name:port` or `nats://name:port`, if the manifests define it. */
function servicePort(objects: readonly KubeObject[], url: URL): number | undefined {
  const service = objects.find(
    (object) => object.kind === "Service" && object.metadata.name === url.hostname,
  );
  const ports = (service?.spec as { ports: { port: number }[] } | undefined)?.ports ?? [];
  return ports.find((port) => port.port === Number(url.port))?.port;
}

/** Seconds a container may still be busy after SIGTERM: preStop sleep plus the drain. */
function stopSeconds(container: Container, shutdownTimeoutMs: number): number {
  const lifecycle = (container as { lifecycle?: { preStop?: { sleep?: { seconds: number } } } }).lifecycle;
  return (lifecycle?.preStop?.sleep?.seconds ?? 0) + shutdownTimeoutMs / 1000;
}

function gracePeriod(template: PodTemplate): number {
  return (template.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30;
}

describe.each(OVERLAYS)("overlay %s: the token-service starts with the configuration it gets", (overlay) => {
  const objects = renderOverlay(overlay);
  const tokenService = findTemplate(objects, "Deployment", "latchkey-token-service");

  it("gives the token-service an environment its config loader accepts, on the ports it exposes", () => {
    const container = findContainer(tokenService, "token-service");
    const config = loadTokenServiceConfig(containerEnvironment(container, objects, overlay));
    expect(config.listen.port).toBe(portNamed(container, "http2"));
    expect(config.grpcListen.port).toBe(portNamed(container, "grpc"));
    expect(config.healthListen?.port).toBe(portNamed(container, "health"));
    expect(config.metricsListen?.port).toBe(portNamed(container, "metrics"));
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
      expect((probe as { grpc?: { port: number } }).grpc?.port).toBe(config.healthListen?.port);
    }
    // New replicas get Verify traffic only if connections age out (issue 17, defect 10).
    expect(config.grpcMaxConnectionAgeMs).toBeGreaterThan(0);
    expect(config.databaseUrl).toBeDefined();
    expect(config.natsUrl).toBeDefined();
    expect(servicePort(objects, new URL(config.natsUrl ?? ""))).toBe(4222);
    // The init container migrates; the server must not race it.
    expect(config.migrateOnStart).toBe(false);
    expect(stopSeconds(container, config.shutdownTimeoutMs)).toBeLessThan(gracePeriod(tokenService));
  });

  it("connects to NATS as the token-service's own user, over TLS, with files its pod mounts", () => {
    const container = findContainer(tokenService, "token-service");
    const config = loadTokenServiceConfig(containerEnvironment(container, objects, overlay));
    for (const path of [config.natsNkeySeedFile, config.natsTlsCa]) {
      expect(path).toBeDefined();
      expect(container.volumeMounts?.some((mount) => path?.startsWith(`${mount.mountPath}/`))).toBe(true);
    }
  });

  it("runs migrations in an init container with the server's own configuration", () => {
    const migrate = findContainer(tokenService, "migrate");
    const server = findContainer(tokenService, "token-service");
    expect(migrate.image).toBe(server.image);
    expect((migrate as { args?: string[] }).args).toEqual(["migrate"]);
    const migrateConfig = loadTokenServiceConfig(containerEnvironment(migrate, objects, overlay));
    const serverConfig = loadTokenServiceConfig(containerEnvironment(server, objects, overlay));
    expect(migrateConfig.databaseUrl).toBe(serverConfig.databaseUrl);
  });

  it("keeps as many stream replicas as there are NATS servers, or fewer", () => {
    const container = findContainer(tokenService, "token-service");
    const config = loadTokenServiceConfig(containerEnvironment(container, objects, overlay));
    const nats = findObject(objects, "StatefulSet", "latchkey-nats").spec as { replicas: number };
    expect(config.streamReplicas).toBeLessThanOrEqual(nats.replicas);
    expect(config.streamReplicas).toBe(nats.replicas >= 3 ? 3 : 1);
  });
});

describe("overlay dev: the example app's sidecar starts with the configuration it gets", () => {
  const overlay = "dev";
  const objects = renderOverlay(overlay);
  const exampleApp = findTemplate(objects, "Deployment", "latchkey-example-app");

  it("gives the sidecar an environment its config loader accepts, in front of the app on loopback", () => {
    const sidecar = findContainer(exampleApp, "latchkey-sidecar");
    const app = findContainer(exampleApp, "app");
    const config = loadSidecarConfig(containerEnvironment(sidecar, objects, overlay));
    expect(config.listen.port).toBe(portNamed(sidecar, "proxy"));
    expect(config.adminListen.port).toBe(portNamed(sidecar, "admin"));
    expect(config.upstream.hostname).toBe("127.0.0.1");
    expect(Number(config.upstream.port)).toBe(portNamed(app, "app"));
    expect(config.enforcement).toBe("enforce");
    // Verify goes to the token-service's native gRPC port, through its Service.
    expect(servicePort(objects, config.tokenServiceUrl)).toBe(8082);
    expect(servicePort(objects, new URL(config.natsUrl ?? ""))).toBe(4222);
    // NATS as the verifier role, over TLS (test/deploy/nats-auth.security.test.ts connects with them).
    expect(config.natsNkeySeedFile).toBeDefined();
    expect(config.natsTlsCa).toBeDefined();
    expect(stopSeconds(sidecar, config.shutdownTimeoutMs)).toBeLessThan(gracePeriod(exampleApp));
  });

  it("mounts a policy the sidecar compiles, at the path LATCHKEY_POLICY names", () => {
    const sidecar = findContainer(exampleApp, "latchkey-sidecar");
    const config = loadSidecarConfig(containerEnvironment(sidecar, objects, overlay));
    const mount = sidecar.volumeMounts?.find((candidate) =>
      config.policy?.startsWith(`${candidate.mountPath}/`),
    );
    expect(mount).toBeDefined();
    const volume = exampleApp.spec.volumes?.find((candidate) => candidate.name === mount?.name);
    const configMap = findObject(objects, "ConfigMap", volume?.configMap?.name ?? "");
    const fileName = (config.policy ?? "").slice((mount?.mountPath.length ?? 0) + 1);
    const text = (configMap.data as Record<string, string>)[fileName];
    expect(text).toBeDefined();
    const policy = compilePolicy(parseYaml(text ?? ""), { env: {}, source: fileName });
    expect(policy.match("GET", "/health").access.kind).toBe("public");
    expect(policy.match("GET", "/").access).toMatchObject({ kind: "key", scopes: ["read"] });
    expect(policy.match("POST", "/orders").access).toMatchObject({ kind: "key", scopes: ["write"] });
    // Bound to one team and the live environment by default: every rule that takes a key, and the
    // default, accept keys of one team, live ones only (a key of any other is refused as unknown).
    for (const rule of [...policy.rules, policy.fallback]) {
      const access = rule.access;
      if (access.kind !== "key" && access.kind !== "optional-key") continue;
      expect(access.teams?.size, rule.label).toBe(1);
      expect([...(access.environments ?? [])], rule.label).toEqual(["live"]);
    }
  });
});
