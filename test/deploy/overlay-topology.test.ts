import { describe, expect, it } from "vitest";
import { containerEnvironment } from "./container-environment.js";
import { isPinned } from "./image-reference.js";
import { findContainer, findObject, findTemplate, type PodTemplate, podTemplates } from "./pod-templates.js";
import { type KubeObject, OVERLAYS, objectId, renderOverlay } from "./render-overlay.js";
import { type ModelNode, placePods } from "./topology-spread.js";

/** Three workers in three zones, and two nodes the token-service may not run on. */
const NODES: readonly ModelNode[] = [
  ...["a", "b", "c"].map((zone) => ({
    name: `worker-${zone}`,
    labels: { "kubernetes.io/hostname": `worker-${zone}`, "topology.kubernetes.io/zone": zone },
  })),
  {
    name: "control-plane",
    labels: { "kubernetes.io/hostname": "control-plane", "topology.kubernetes.io/zone": "a" },
    taints: [{ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }],
  },
  {
    name: "cordoned",
    labels: { "kubernetes.io/hostname": "cordoned", "topology.kubernetes.io/zone": "b" },
    taints: [{ key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }],
  },
];

interface Selector {
  readonly matchLabels?: Readonly<Record<string, string>>;
}

function selectsTemplate(selector: Selector | undefined, template: PodTemplate): boolean {
  const entries = Object.entries(selector?.matchLabels ?? {});
  return entries.length > 0 && entries.every(([key, value]) => template.labels[key] === value);
}

function natsConfig(objects: readonly KubeObject[]): string {
  const nats = findTemplate(objects, "StatefulSet", "latchkey-nats");
  const volume = nats.spec.volumes?.find((candidate) => candidate.name === "config");
  const configMap = findObject(objects, "ConfigMap", volume?.configMap?.name ?? "");
  return (configMap.data as Record<string, string>)["nats.conf"] ?? "";
}

function spreadKeys(template: PodTemplate): Record<string, string> {
  const constraints = template.spec.topologySpreadConstraints ?? [];
  return Object.fromEntries(
    constraints
      .filter((constraint) => selectsTemplate(constraint.labelSelector, template))
      .map((constraint) => [constraint.topologyKey, constraint.whenUnsatisfiable]),
  );
}

describe.each(OVERLAYS)("overlay %s: every environment", (overlay) => {
  const objects = renderOverlay(overlay);

  it("names the token-service's ports so meshes recognise gRPC and HTTP/2", () => {
    const service = findObject(objects, "Service", "latchkey-token-service");
    const ports = (service.spec as { ports: { name: string; port: number; appProtocol: string }[] }).ports;
    expect(ports).toEqual([
      expect.objectContaining({ name: "grpc", port: 8082, appProtocol: "grpc" }),
      expect.objectContaining({ name: "http2", port: 8081, appProtocol: "kubernetes.io/h2c" }),
    ]);
  });

  it("probes the token-service with native gRPC health checks on its cleartext health port", () => {
    const container = findContainer(
      findTemplate(objects, "Deployment", "latchkey-token-service"),
      "token-service",
    );
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
      // 8083 (LATCHKEY_HEALTH_LISTEN) stays cleartext when TLS is on: kubelet gRPC probes have no TLS.
      expect(probe).toMatchObject({ grpc: { port: 8083 } });
    }
  });

  it("runs NATS with JetStream on a persistent volume", () => {
    expect(natsConfig(objects)).toMatch(/jetstream\s*\{[^}]*store_dir:\s*\/data\/jetstream/);
    const nats = findObject(objects, "StatefulSet", "latchkey-nats").spec as {
      volumeClaimTemplates: { metadata: { name: string } }[];
    };
    expect(nats.volumeClaimTemplates.map((claim) => claim.metadata.name)).toEqual(["data"]);
  });
});

describe("overlay dev", () => {
  const objects = renderOverlay("dev");

  it("puts the Latchkey sidecar in front of the example app as a native sidecar", () => {
    const app = findTemplate(objects, "Deployment", "latchkey-example-app");
    const sidecar = app.spec.initContainers?.find((container) => container.name === "latchkey-sidecar");
    expect(sidecar?.restartPolicy).toBe("Always");
    // Without a startup probe the app could start before its sidecar listens.
    expect(sidecar?.startupProbe).toBeDefined();
    expect(app.spec.containers.map((container) => container.name)).toEqual(["app"]);
    expect(app.labels["latchkey.dev/verifier"]).toBe("true");
  });

  it("routes the example app's Service to the sidecar, never to the app", () => {
    const service = findObject(objects, "Service", "latchkey-example-app");
    const app = findTemplate(objects, "Deployment", "latchkey-example-app");
    const proxy = findContainer(app, "latchkey-sidecar").ports?.find((port) => port.name === "proxy");
    const appPorts = findContainer(app, "app").ports?.map((port) => port.containerPort) ?? [];
    const targets = (service.spec as { ports: { targetPort: number }[] }).ports.map(
      (port) => port.targetPort,
    );
    expect(targets).toEqual([proxy?.containerPort]);
    expect(targets.some((target) => appPorts.includes(target))).toBe(false);
  });

  it("runs one of each: token-service, NATS server and PostgreSQL, in one namespace", () => {
    const tokenService = findObject(objects, "Deployment", "latchkey-token-service").spec as {
      replicas?: number;
    };
    expect(tokenService.replicas ?? 1).toBe(1);
    expect((findObject(objects, "StatefulSet", "latchkey-nats").spec as { replicas: number }).replicas).toBe(
      1,
    );
    expect(
      (findObject(objects, "StatefulSet", "latchkey-postgres").spec as { replicas: number }).replicas,
    ).toBe(1);
    expect(natsConfig(objects)).not.toMatch(/cluster\s*\{/);
    expect(new Set(objects.map((object) => object.metadata.namespace ?? object.metadata.name))).toEqual(
      new Set(["latchkey"]),
    );
    expect(
      objects.filter((object) => ["HorizontalPodAutoscaler", "PodDisruptionBudget"].includes(object.kind)),
    ).toEqual([]);
  });

  it("points the token-service at the in-cluster PostgreSQL", () => {
    const container = findContainer(
      findTemplate(objects, "Deployment", "latchkey-token-service"),
      "token-service",
    );
    const url = new URL(containerEnvironment(container, objects, "dev").DATABASE_URL ?? "");
    expect(`${url.hostname}:${url.port}${url.pathname}`).toBe("latchkey-postgres:5432/latchkey");
    findObject(objects, "Service", "latchkey-postgres");
  });
});

describe.each(["production", "production-cnpg"] as const)("overlay %s", (overlay) => {
  const objects = renderOverlay(overlay);
  const tokenService = findTemplate(objects, "Deployment", "latchkey-token-service");

  it("scales the token-service from at least three pods with an autoscaler that owns the count", () => {
    const autoscalers = objects.filter((object) => object.kind === "HorizontalPodAutoscaler");
    expect(autoscalers.map((object) => object.apiVersion)).toEqual(["autoscaling/v2"]);
    const spec = autoscalers[0]?.spec as {
      scaleTargetRef: { kind: string; name: string };
      minReplicas: number;
      maxReplicas: number;
    };
    expect(spec.scaleTargetRef).toMatchObject({ kind: "Deployment", name: "latchkey-token-service" });
    expect(spec.minReplicas).toBeGreaterThanOrEqual(3);
    expect(spec.maxReplicas).toBeGreaterThan(spec.minReplicas);
    // A replicas field would be reset by every `kubectl apply`, undoing the autoscaler.
    expect((tokenService.owner.spec as { replicas?: number }).replicas).toBeUndefined();
  });

  it("limits voluntary disruptions of the token-service to one pod at a time", () => {
    const budgets = objects.filter(
      (object) =>
        object.kind === "PodDisruptionBudget" &&
        selectsTemplate((object.spec as { selector: Selector }).selector, tokenService),
    );
    expect(budgets.map(objectId)).toEqual(["PodDisruptionBudget/latchkey-token-service"]);
    expect(budgets[0]?.spec).toMatchObject({ maxUnavailable: 1 });
  });

  it("spreads the token-service over nodes and zones", () => {
    expect(spreadKeys(tokenService)).toEqual({
      "kubernetes.io/hostname": "DoNotSchedule",
      "topology.kubernetes.io/zone": "ScheduleAnyway",
    });
    // A node the pods cannot run on must not count, or it holds the minimum at zero.
    for (const constraint of tokenService.spec.topologySpreadConstraints ?? []) {
      expect(constraint.nodeTaintsPolicy, constraint.topologyKey).toBe("Honor");
    }
  });

  it("schedules a scale-out to the autoscaler's maximum beside tainted nodes, evenly", () => {
    const hpa = findObject(objects, "HorizontalPodAutoscaler", "latchkey-token-service").spec as {
      maxReplicas: number;
    };
    const placed = placePods(tokenService.spec, NODES, hpa.maxReplicas);
    expect(placed.get(""), "pods left Pending").toBeUndefined();
    const perWorker = ["a", "b", "c"].map((zone) => placed.get(`worker-${zone}`) ?? 0);
    expect(Math.max(...perWorker) - Math.min(...perWorker)).toBeLessThanOrEqual(1);
    expect(placed.get("control-plane")).toBe(0);
  });

  it("runs a three-node NATS JetStream cluster, one server per node, each routing to all three", () => {
    const nats = findTemplate(objects, "StatefulSet", "latchkey-nats");
    const spec = nats.owner.spec as { replicas: number; serviceName: string; podManagementPolicy: string };
    expect(spec.replicas).toBe(3);
    // Servers wait for each other's quorum before they are healthy.
    expect(spec.podManagementPolicy).toBe("Parallel");
    expect(spreadKeys(nats)["kubernetes.io/hostname"]).toBe("DoNotSchedule");
    const headless = findObject(objects, "Service", spec.serviceName).spec as {
      clusterIP: string;
      publishNotReadyAddresses: boolean;
    };
    expect(headless).toMatchObject({ clusterIP: "None", publishNotReadyAddresses: true });
    const config = natsConfig(objects);
    expect(config).toMatch(/server_name:\s*\$POD_NAME/);
    const routes = [...config.matchAll(/nats:\/\/([a-z0-9.-]+):6222/g)].map((match) => match[1]);
    expect(routes).toEqual([0, 1, 2].map((ordinal) => `latchkey-nats-${ordinal}.${spec.serviceName}`));
    const budget = findObject(objects, "PodDisruptionBudget", "latchkey-nats").spec as {
      maxUnavailable: number;
    };
    expect(budget.maxUnavailable).toBe(1);
  });

  it("leaves the example app out", () => {
    expect(
      objects.filter((object) => object.metadata.name.startsWith("latchkey-example-app")).map(objectId),
    ).toEqual([]);
  });

  it("keeps PostgreSQL out of the manifests' own workloads and credentials out of ConfigMaps", () => {
    const workloads = podTemplates(objects).map((template) => template.owner.metadata.name);
    expect(workloads.filter((name) => name.includes("postgres"))).toEqual([]);
    for (const configMap of objects.filter((object) => object.kind === "ConfigMap")) {
      expect(Object.keys((configMap.data ?? {}) as object), objectId(configMap)).not.toContain(
        "DATABASE_URL",
      );
      expect(Object.keys((configMap.data ?? {}) as object), objectId(configMap)).not.toContain(
        "LATCHKEY_ROOT_KEY",
      );
    }
    expect(objects.filter((object) => object.kind === "Secret").map(objectId)).toEqual([]);
  });
});

describe("the topology spread model itself", () => {
  const spec = findTemplate(renderOverlay("production"), "Deployment", "latchkey-token-service").spec;

  it("stalls a scale-out when tainted nodes count (nodeTaintsPolicy left at Ignore)", () => {
    const ignoring = {
      ...spec,
      topologySpreadConstraints: (spec.topologySpreadConstraints ?? []).map(
        ({ nodeTaintsPolicy: _, ...constraint }) => constraint,
      ),
    };
    // One pod per untainted worker, then the empty tainted nodes hold the minimum at zero.
    expect(placePods(ignoring, NODES, 6).get("")).toBe(3);
    expect(placePods(spec, NODES, 6).get("")).toBeUndefined();
  });
});

describe("overlay production-cnpg", () => {
  const objects = renderOverlay("production-cnpg");

  it("adds a three-instance CloudNativePG Cluster for the latchkey database", () => {
    const cluster = findObject(objects, "Cluster", "latchkey-postgres");
    expect(cluster.apiVersion).toBe("postgresql.cnpg.io/v1");
    expect(cluster.spec).toMatchObject({
      instances: 3,
      bootstrap: { initdb: { database: "latchkey", owner: "latchkey" } },
      storage: { size: expect.any(String) },
      affinity: { enablePodAntiAffinity: true, topologyKey: "kubernetes.io/hostname" },
    });
  });

  it("pins the PostgreSQL image to a release", () => {
    const { imageName } = findObject(objects, "Cluster", "latchkey-postgres").spec as { imageName?: string };
    expect(imageName).toBeDefined();
    expect(isPinned(imageName ?? ""), imageName).toBe(true);
  });

  it("archives WAL and takes a daily base backup to one object store", () => {
    const cluster = findObject(objects, "Cluster", "latchkey-postgres").spec as {
      plugins?: { name: string; isWALArchiver?: boolean; parameters?: Record<string, string> }[];
    };
    const archiver = cluster.plugins?.find((plugin) => plugin.isWALArchiver === true);
    expect(archiver?.name).toBe("barman-cloud.cloudnative-pg.io");
    const store = findObject(objects, "ObjectStore", archiver?.parameters?.barmanObjectName ?? "");
    expect(store.apiVersion).toBe("barmancloud.cnpg.io/v1");
    expect(store.spec).toMatchObject({
      retentionPolicy: expect.stringMatching(/^\d+[dwm]$/),
      configuration: { destinationPath: expect.stringMatching(/^(s3|gs|https):\/\//) },
    });
    const backups = objects.filter((object) => object.kind === "ScheduledBackup");
    expect(backups.map((object) => object.apiVersion)).toEqual(["postgresql.cnpg.io/v1"]);
    expect(backups[0]?.spec).toMatchObject({
      cluster: { name: "latchkey-postgres" },
      method: "plugin",
      pluginConfiguration: { name: archiver?.name },
      // CloudNativePG's schedule has six fields, seconds first.
      schedule: expect.stringMatching(/^\S+( \S+){5}$/),
    });
  });

  it("takes DATABASE_URL from the operator's app Secret, in the server and the migrate step", () => {
    const template = findTemplate(objects, "Deployment", "latchkey-token-service");
    for (const name of ["migrate", "token-service"]) {
      const variable = findContainer(template, name).env?.find(
        (candidate) => candidate.name === "DATABASE_URL",
      );
      expect(variable?.valueFrom?.secretKeyRef, name).toEqual({ name: "latchkey-postgres-app", key: "uri" });
    }
  });

  it("drops the egress to an outside PostgreSQL", () => {
    const names = objects
      .filter((object) => object.kind === "NetworkPolicy")
      .map((object) => object.metadata.name);
    expect(names).not.toContain("latchkey-token-service-egress-postgres");
    expect(names).toContain("latchkey-token-service-egress-cnpg");
  });
});
