import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadSidecarConfig } from "../../services/sidecar/src/config.js";
import { compilePolicy } from "../../services/sidecar/src/policy/policy.js";
import { containerEnvironment } from "./container-environment.js";
import { isPinned } from "./image-reference.js";
import { schemaErrors, unknownFieldErrors } from "./kubernetes-schema.js";
import { canConnect, type Endpoint } from "./network-policy.js";
import { findContainer, findObject, findTemplate } from "./pod-templates.js";
import { SIDECAR_INJECTION_SAMPLE } from "./renderings.js";

// components/sidecar-injection applied to a sample app of a user's own
// (test/deploy/fixtures/sidecar-injection): the app's Deployment and Service, labelled
// latchkey.dev/sidecar=inject, and the sidecar's two ConfigMaps.
describe("components/sidecar-injection on a sample app", () => {
  const { objects } = SIDECAR_INJECTION_SAMPLE;
  const shop = findTemplate(objects, "Deployment", "shop");
  const sidecar = findContainer(shop, "latchkey-sidecar");
  const config = loadSidecarConfig(containerEnvironment(sidecar, objects, SIDECAR_INJECTION_SAMPLE.overlay));

  it("renders objects the Kubernetes API accepts", async () => {
    expect(await schemaErrors(objects)).toEqual([]);
    expect(unknownFieldErrors(objects)).toEqual([]);
  });

  it("adds the sidecar as a native sidecar and leaves the app's containers as they were", () => {
    expect(shop.spec.initContainers?.map((container) => container.name)).toEqual(["latchkey-sidecar"]);
    expect(sidecar.restartPolicy).toBe("Always");
    expect(sidecar.startupProbe).toBeDefined();
    expect(isPinned(sidecar.image ?? "")).toBe(true);
    expect(shop.spec.containers.map((container) => container.name)).toEqual(["shop"]);
    expect(shop.labels).toMatchObject({
      "latchkey.dev/verifier": "true",
      "latchkey.dev/sidecar": "injected",
    });
    expect(shop.spec.enableServiceLinks).toBe(false);
    expect(sidecar.securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
  });

  it("starts the sidecar with the settings and policy the user generated", () => {
    expect(config.listen.port).toBe(8080);
    expect(config.upstream.toString()).toBe("http://127.0.0.1:3000/");
    const mount = sidecar.volumeMounts?.find((candidate) =>
      config.policy?.startsWith(`${candidate.mountPath}/`),
    );
    const volume = shop.spec.volumes?.find((candidate) => candidate.name === mount?.name);
    const configMap = findObject(objects, "ConfigMap", volume?.configMap?.name ?? "");
    const text = (configMap.data as Record<string, string>)["policy.yaml"] ?? "";
    const policy = compilePolicy(parseYaml(text), { env: {}, source: "policy.yaml" });
    expect(policy.match("GET", "/healthz").access.kind).toBe("public");
  });

  it("points the Service at the sidecar's proxy port, never at the app's", () => {
    const service = findObject(objects, "Service", "shop").spec as {
      ports: { targetPort: number | string }[];
    };
    expect(service.ports.map((port) => port.targetPort)).toEqual([config.listen.port]);
  });

  it("closes the app's own port and the admin port to everything but the pod itself", () => {
    const pod: Endpoint = { name: "shop", namespace: "shop", labels: shop.labels, ip: "10.244.1.10" };
    const clients: Endpoint[] = [
      { name: "neighbour", namespace: "shop", labels: { app: "cart" }, ip: "10.244.1.11" },
      { name: "elsewhere", namespace: "payments", labels: {}, ip: "10.244.2.12" },
      { name: "outside", namespace: "", labels: {}, external: true, ip: "203.0.113.20" },
    ];
    for (const client of clients) {
      expect(canConnect(objects, client, pod, 8080), `${client.name} → 8080`).toBe(true);
      expect(canConnect(objects, client, pod, 3000), `${client.name} → 3000`).toBe(false);
      expect(canConnect(objects, client, pod, 9090), `${client.name} → 9090`).toBe(false);
    }
  });
});
