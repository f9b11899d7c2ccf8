import { describe, expect, it } from "vitest";
import { canConnect, type Endpoint } from "./network-policy.js";
import { podTemplates } from "./pod-templates.js";
import { type KubeObject, OVERLAYS, type OverlayName, renderOverlay } from "./render-overlay.js";

/** The pods of the manifests, plus pods and addresses elsewhere that try to connect. */
function endpointsOf(objects: readonly KubeObject[], overlay: OverlayName): Map<string, Endpoint> {
  const endpoints = new Map<string, Endpoint>();
  for (const template of podTemplates(objects)) {
    const containers = [...(template.spec.initContainers ?? []), ...template.spec.containers];
    const ports = Object.fromEntries(
      containers.flatMap((container) => container.ports ?? []).map((port) => [port.name, port.containerPort]),
    );
    const name = template.owner.metadata.name;
    endpoints.set(name, { name, namespace: template.namespace, labels: template.labels, ports });
  }
  if (overlay === "production-cnpg") {
    // The operator creates these pods; the manifests only hold the Cluster.
    const labels = { "cnpg.io/cluster": "latchkey-postgres" };
    endpoints.set("latchkey-postgres", { name: "latchkey-postgres", namespace: "latchkey", labels });
  }
  const others: Endpoint[] = [
    { name: "verifier-elsewhere", namespace: "payments", labels: { "latchkey.dev/verifier": "true" } },
    { name: "stranger-elsewhere", namespace: "payments", labels: { app: "billing" } },
    { name: "stranger-here", namespace: "latchkey", labels: { app: "debug-shell" } },
    { name: "kube-dns", namespace: "kube-system", labels: { "k8s-app": "kube-dns" } },
    { name: "external-address", namespace: "", labels: {}, external: true },
  ];
  for (const endpoint of others) endpoints.set(endpoint.name, endpoint);
  return endpoints;
}

describe.each(OVERLAYS)("overlay %s: network policies", (overlay) => {
  const objects = renderOverlay(overlay);
  const endpoints = endpointsOf(objects, overlay);
  const endpoint = (name: string): Endpoint => {
    const found = endpoints.get(name);
    if (found === undefined) throw new Error(`no pod ${name}`);
    return found;
  };
  /** Every endpoint that may connect to `target` on `port`, sorted. */
  const clientsOf = (target: string, port: number): string[] =>
    [...endpoints.values()]
      .filter((from) => from.name !== target && canConnect(objects, from, endpoint(target), port))
      .map((from) => from.name)
      .sort();

  // The dev overlay runs the example app, whose sidecar is a verifier in this namespace.
  const exampleApp = endpoints.has("latchkey-example-app") ? ["latchkey-example-app"] : [];

  it("lets only sidecars and listed services, in any namespace, reach the token-service", () => {
    expect(clientsOf("latchkey-token-service", 8082)).toEqual([...exampleApp, "verifier-elsewhere"]);
    // The example app's own egress opens only the native gRPC port its sidecar uses.
    expect(clientsOf("latchkey-token-service", 8081)).toEqual(["verifier-elsewhere"]);
  });

  it("lets only the token-service and verifiers reach NATS, and only NATS servers its cluster port", () => {
    expect(clientsOf("latchkey-nats", 4222)).toEqual([
      ...exampleApp,
      "latchkey-token-service",
      "verifier-elsewhere",
    ]);
    expect(clientsOf("latchkey-nats", 6222)).toEqual([]);
    const nats = endpoint("latchkey-nats");
    expect(canConnect(objects, nats, nats, 6222)).toBe(true);
  });

  if (overlay !== "production") {
    it("lets only the token-service reach PostgreSQL", () => {
      const clients = clientsOf("latchkey-postgres", 5432);
      expect(clients).toEqual(["latchkey-token-service"]);
    });
  }

  if (overlay === "production") {
    it("lets only the token-service open connections to an outside PostgreSQL", () => {
      const external = endpoint("external-address");
      const inNamespace = [...endpoints.values()].filter((from) => from.namespace === "latchkey");
      const allowed = inNamespace
        .filter((from) => canConnect(objects, from, external, 5432))
        .map((from) => from.name);
      expect(allowed).toEqual(["latchkey-token-service"]);
    });
  }

  if (overlay === "dev") {
    it("exposes the example app only through its sidecar's port", () => {
      expect(clientsOf("latchkey-example-app", 8080)).toContain("stranger-elsewhere");
      expect(clientsOf("latchkey-example-app", 3000)).toEqual([]);
      expect(clientsOf("latchkey-example-app", 9090)).toEqual([]);
    });
  }

  it("denies everything else to a pod nobody listed, in or out", () => {
    const stranger = endpoint("stranger-here");
    const reachable = [...endpoints.values()]
      .filter((target) => target.namespace === "latchkey" && target !== stranger)
      .filter((target) =>
        [4222, 5432, 6222, 8081, 8082, 3000].some((port) => canConnect(objects, stranger, target, port)),
      )
      .map((target) => target.name);
    expect(reachable).toEqual([]);
    expect(canConnect(objects, stranger, endpoint("external-address"), 443)).toBe(false);
  });

  it("lets every pod of the namespace resolve names", () => {
    const dns = endpoint("kube-dns");
    for (const from of endpoints.values()) {
      if (from.namespace !== "latchkey") continue;
      expect(canConnect(objects, from, dns, 53, "UDP"), from.name).toBe(true);
      expect(canConnect(objects, from, dns, 53, "TCP"), from.name).toBe(true);
    }
  });
});
