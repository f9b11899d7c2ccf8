import { describe, expect, it } from "vitest";
import { SIDECAR_ENV } from "../../services/sidecar/src/config.js";
import { TOKEN_SERVICE_ENV } from "../../services/token-service/src/config.js";
import {
  containerEnvironment,
  EXTERNAL_CONFIG_MAPS,
  EXTERNAL_SECRETS,
  environmentReferences,
  isRendered,
  referenceId,
} from "./container-environment.js";
import { isPinned } from "./image-reference.js";
import { type Container, containersOf, type PlacedContainer, podTemplates } from "./pod-templates.js";
import { OVERLAYS, objectId, renderOverlay } from "./render-overlay.js";

/**
 * The environment variables each Latchkey image reads: its config schema's env map,
 * plus LATCHKEY_CONFIG (the optional config file, read by @latchkey/config).
 */
const IMAGE_ENV: Readonly<Record<string, ReadonlySet<string>>> = {
  "latchkey/token-service": new Set([...Object.values(TOKEN_SERVICE_ENV), "LATCHKEY_CONFIG"]),
  "latchkey/sidecar": new Set([...Object.values(SIDECAR_ENV), "LATCHKEY_CONFIG"]),
};

/** The image's repository without registry host or tag: "latchkey/token-service". */
function repositoryOf(image: string): string {
  const withoutDigest = image.split("@")[0] ?? image;
  const lastSlash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.lastIndexOf(":");
  const repository = colon > lastSlash ? withoutDigest.slice(0, colon) : withoutDigest;
  // Drop a registry host (as Docker tells one: a dot, a port or localhost).
  const [first = "", ...rest] = repository.split("/");
  const isHost = /[.:]/.test(first) || first === "localhost";
  return rest.length > 0 && isHost ? rest.join("/") : repository;
}

function latchkeyEnvNames(container: Container): ReadonlySet<string> | undefined {
  const repository = repositoryOf(container.image ?? "");
  // The repository may sit under an organisation of your registry: acme/latchkey/sidecar.
  const match = Object.keys(IMAGE_ENV).find((name) => repository === name || repository.endsWith(`/${name}`));
  return match === undefined ? undefined : IMAGE_ENV[match];
}

function longRunning(placed: PlacedContainer): boolean {
  return placed.role === "server" || placed.role === "sidecar";
}

describe.each(OVERLAYS)("overlay %s: every workload", (overlay) => {
  const objects = renderOverlay(overlay);
  const containers = containersOf(objects);
  const templates = podTemplates(objects);

  it("has containers to check", () => {
    // migrate, token-service, nats; plus postgres and the example app in dev.
    expect(containers.length).toBeGreaterThanOrEqual(3);
  });

  it("gives every long-running container (native sidecars included) a liveness and a readiness probe", () => {
    const missing = containers
      .filter(longRunning)
      .filter(
        ({ container }) => container.livenessProbe === undefined || container.readinessProbe === undefined,
      )
      .map(({ id }) => id);
    expect(missing).toEqual([]);
  });

  it("gives no probe to a container that runs to completion, as the API requires", () => {
    // Init containers (other than sidecars) and Jobs exit when done: a liveness probe
    // would kill a slow migration and readiness has no meaning; the API server refuses
    // probes on such init containers. Their success is the exit code.
    const runToCompletion = containers.filter((placed) => !longRunning(placed));
    for (const { container, id } of runToCompletion) {
      expect(
        container.livenessProbe ?? container.readinessProbe ?? container.startupProbe,
        id,
      ).toBeUndefined();
    }
    expect(runToCompletion.map(({ id }) => id)).toEqual(["Deployment/latchkey-token-service › migrate"]);
  });

  it("gives every container CPU and memory requests and limits", () => {
    const missing: string[] = [];
    for (const { container, id } of containers) {
      for (const bound of ["requests", "limits"] as const) {
        for (const resource of ["cpu", "memory"]) {
          if (container.resources?.[bound]?.[resource] === undefined)
            missing.push(`${id}: ${bound}.${resource}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("runs every container as non-root, read-only, unprivileged, with all capabilities dropped", () => {
    const problems: string[] = [];
    for (const { template, container, id } of containers) {
      const pod = template.spec.securityContext ?? {};
      const own = container.securityContext ?? {};
      if ((own.runAsNonRoot ?? pod.runAsNonRoot) !== true) problems.push(`${id}: runAsNonRoot`);
      if ((own.runAsUser ?? pod.runAsUser) === 0) problems.push(`${id}: runAsUser 0`);
      if (own.readOnlyRootFilesystem !== true) problems.push(`${id}: readOnlyRootFilesystem`);
      if (own.allowPrivilegeEscalation !== false) problems.push(`${id}: allowPrivilegeEscalation`);
      if (!(own.capabilities?.drop ?? []).includes("ALL")) problems.push(`${id}: capabilities.drop ALL`);
      if ((own.capabilities?.add ?? []).length > 0) problems.push(`${id}: capabilities.add`);
      if ((own.seccompProfile ?? pod.seccompProfile)?.type !== "RuntimeDefault")
        problems.push(`${id}: seccomp`);
    }
    expect(problems).toEqual([]);
  });

  it("pins every image to a version tag or a digest", () => {
    const floating = containers
      .filter(({ container }) => !isPinned(container.image ?? ""))
      .map(({ id, container }) => `${id}: ${container.image}`);
    expect(floating).toEqual([]);
  });

  it("keeps service links and service-account tokens out of every pod", () => {
    // Service links would add LATCHKEY_NATS_PORT=tcp://… and similar to the environment,
    // where the config loaders read LATCHKEY_* settings; no pod calls the Kubernetes API.
    for (const { owner, spec } of templates) {
      expect(spec.enableServiceLinks, objectId(owner)).toBe(false);
      expect(spec.automountServiceAccountToken, objectId(owner)).toBe(false);
    }
  });

  it("refers only to ConfigMaps and Secrets that are rendered, optional, or documented as external", () => {
    const dangling: string[] = [];
    for (const { template, container, id } of containers) {
      for (const reference of environmentReferences(container)) {
        const external = reference.kind === "Secret" && reference.name in EXTERNAL_SECRETS[overlay];
        if (!reference.optional && !external && !isRendered(objects, reference)) {
          dangling.push(`${id}: ${referenceId(reference)}`);
        }
      }
      for (const volume of template.spec.volumes ?? []) {
        const configMap = volume.configMap?.name;
        if (
          configMap !== undefined &&
          !EXTERNAL_CONFIG_MAPS[overlay].includes(configMap) &&
          !isRendered(objects, { kind: "ConfigMap", name: configMap, optional: false })
        ) {
          dangling.push(`${id}: volume ${volume.name} ConfigMap/${configMap}`);
        }
      }
    }
    expect(dangling).toEqual([]);
  });

  it("sets only environment variables that the service's config schema defines", () => {
    const unknown: string[] = [];
    let checked = 0;
    for (const { container, id } of containers) {
      const allowed = latchkeyEnvNames(container);
      if (allowed === undefined) continue;
      checked += 1;
      for (const name of Object.keys(containerEnvironment(container, objects, overlay))) {
        if (!allowed.has(name)) unknown.push(`${id}: ${name}`);
      }
    }
    expect(unknown).toEqual([]);
    // The token-service, its migrate step, and the example app's sidecar where it runs.
    const sidecars = objects.some((object) => object.metadata.name === "latchkey-example-app") ? 1 : 0;
    expect(checked).toBe(2 + sidecars);
  });

  it("points every Service port at a declared container port of the pods it selects", () => {
    const problems: string[] = [];
    for (const service of objects.filter((object) => object.kind === "Service")) {
      const spec = service.spec as {
        selector?: Record<string, string>;
        ports: { name?: string; targetPort?: number | string; port: number }[];
      };
      const selector = Object.entries(spec.selector ?? {});
      const selected = templates.filter(
        (template) =>
          template.namespace === service.metadata.namespace &&
          selector.every(([key, value]) => template.labels[key] === value),
      );
      if (selector.length === 0 || selected.length === 0) {
        problems.push(`${objectId(service)} selects no pod template`);
        continue;
      }
      for (const port of spec.ports) {
        const target = port.targetPort ?? port.port;
        for (const template of selected) {
          const sidecars = (template.spec.initContainers ?? []).filter((c) => c.restartPolicy === "Always");
          const declared = [...template.spec.containers, ...sidecars].flatMap(
            (container) => container.ports ?? [],
          );
          const found = declared.some((candidate) =>
            typeof target === "number" ? candidate.containerPort === target : candidate.name === target,
          );
          if (!found) problems.push(`${objectId(service)} port ${port.name ?? port.port} → ${target}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe("the image checks themselves", () => {
  it("tells pinned images from floating ones", () => {
    expect(isPinned("nats:2.14.5-scratch")).toBe(true);
    expect(isPinned("registry.example.com:5000/latchkey/sidecar:0.1.0")).toBe(true);
    expect(isPinned(`latchkey/sidecar@sha256:${"a".repeat(64)}`)).toBe(true);
    expect(isPinned("nats")).toBe(false);
    expect(isPinned("nats:latest")).toBe(false);
    expect(isPinned("nats:alpine")).toBe(false);
    expect(isPinned("registry.example.com:5000/latchkey/sidecar")).toBe(false);
    expect(isPinned("postgres:18.6-trixie")).toBe(true);
    expect(isPinned("traefik/whoami:v1.11.0")).toBe(true);
    // A bare major, or a version that is only the base distribution's, moves with releases.
    expect(isPinned("node:26")).toBe(false);
    expect(isPinned("node:26-trixie-slim")).toBe(false);
    expect(isPinned("postgres:18-alpine3.22")).toBe(false);
    expect(isPinned("nats:alpine3.20")).toBe(false);
    expect(isPinned("traefik/whoami:v1")).toBe(false);
    expect(isPinned("nats:latest-2.14.5")).toBe(false);
  });

  it("finds a Latchkey image behind any registry", () => {
    const names = (image: string) => latchkeyEnvNames({ name: "c", image } as Container);
    expect(names("localhost/latchkey/token-service:0.1.0")).toBe(IMAGE_ENV["latchkey/token-service"]);
    expect(names("ghcr.io/acme/latchkey/sidecar:1.2.3")).toBe(IMAGE_ENV["latchkey/sidecar"]);
    expect(names("traefik/whoami:v1.11.0")).toBeUndefined();
  });
});
