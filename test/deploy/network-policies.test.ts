import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { canConnect, type Endpoint, inCidr } from "./network-policy.js";
import { podTemplates } from "./pod-templates.js";
import { type KubeObject, OVERLAYS, type OverlayName, renderOverlay } from "./render-overlay.js";

// The labels of the namespace the overlays deploy into (applied once, outside the kustomizations).
const LATCHKEY_NAMESPACE_LABELS = (
  parse(readFileSync("deploy/k8s/namespace.yaml", "utf8")) as { metadata: { labels: Record<string, string> } }
).metadata.labels;
// What a cluster admin puts on a namespace whose pods may be verifiers (deploy/README.md).
const VERIFIERS_ALLOWED = { "latchkey.dev/verifiers": "allowed" };

/** The pods of the manifests, plus pods and addresses elsewhere that try to connect. */
function endpointsOf(objects: readonly KubeObject[], overlay: OverlayName): Map<string, Endpoint> {
  const endpoints = new Map<string, Endpoint>();
  // Pods get addresses from a pod network, as a CNI would hand them out.
  let nextPodAddress = 10;
  const podIp = () => `10.244.0.${nextPodAddress++}`;
  for (const template of podTemplates(objects)) {
    const containers = [...(template.spec.initContainers ?? []), ...template.spec.containers];
    const ports = Object.fromEntries(
      containers.flatMap((container) => container.ports ?? []).map((port) => [port.name, port.containerPort]),
    );
    const name = template.owner.metadata.name;
    endpoints.set(name, {
      name,
      namespace: template.namespace,
      namespaceLabels: template.namespace === "latchkey" ? LATCHKEY_NAMESPACE_LABELS : {},
      labels: template.labels,
      ports,
      ip: podIp(),
    });
  }
  if (overlay === "production-cnpg") {
    // The operator creates these pods; the manifests only hold the Cluster.
    const labels = { "cnpg.io/cluster": "latchkey-postgres" };
    for (const name of ["latchkey-postgres", "latchkey-postgres-replica"]) {
      endpoints.set(name, { name, namespace: "latchkey", labels, ip: podIp() });
    }
    const operator = { "app.kubernetes.io/name": "cloudnative-pg" };
    endpoints.set("cnpg-operator", {
      name: "cnpg-operator",
      namespace: "cnpg-system",
      labels: operator,
      ip: podIp(),
    });
    // Another pod in the operator's namespace is no operator.
    const other = { app: "something-else" };
    endpoints.set("cnpg-system-other", {
      name: "cnpg-system-other",
      namespace: "cnpg-system",
      labels: other,
      ip: podIp(),
    });
  }
  const others: Endpoint[] = [
    {
      name: "verifier-elsewhere",
      namespace: "payments",
      namespaceLabels: VERIFIERS_ALLOWED,
      labels: { "latchkey.dev/verifier": "true" },
      ip: podIp(),
    },
    // Anyone who may create pods can label one a verifier; only a cluster admin labels namespaces.
    {
      name: "self-labelled-verifier",
      namespace: "sandbox",
      labels: { "latchkey.dev/verifier": "true" },
      ip: podIp(),
    },
    { name: "stranger-elsewhere", namespace: "payments", labels: { app: "billing" }, ip: podIp() },
    { name: "stranger-here", namespace: "latchkey", labels: { app: "debug-shell" }, ip: podIp() },
    { name: "kube-dns", namespace: "kube-system", labels: { "k8s-app": "kube-dns" }, ip: podIp() },
    { name: "external-address", namespace: "", labels: {}, external: true, ip: "203.0.113.10" },
    { name: "external-address-v6", namespace: "", labels: {}, external: true, ip: "2001:db8::10" },
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

  it("lets only sidecars and listed services, in namespaces allowed to host verifiers, reach the token-service", () => {
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

  if (overlay === "dev") {
    it("lets only the token-service reach PostgreSQL", () => {
      expect(clientsOf("latchkey-postgres", 5432)).toEqual(["latchkey-token-service"]);
    });
  }

  if (overlay === "production-cnpg") {
    it("lets the token-service, the other instances and the operator reach PostgreSQL", () => {
      expect(clientsOf("latchkey-postgres", 5432)).toEqual([
        "cnpg-operator",
        "latchkey-postgres-replica",
        "latchkey-token-service",
      ]);
    });

    it("lets the operator and the other instances reach each instance manager (status, /failsafe)", () => {
      // Blocked, the operator loses the instances' status, and a primary cut off from the
      // API server finds no peer that sees it and shuts itself down.
      expect(clientsOf("latchkey-postgres", 8000)).toEqual(["cnpg-operator", "latchkey-postgres-replica"]);
      const primary = endpoint("latchkey-postgres");
      const replica = endpoint("latchkey-postgres-replica");
      for (const port of [5432, 8000]) {
        expect(canConnect(objects, replica, primary, port), `replica → primary ${port}`).toBe(true);
        expect(canConnect(objects, primary, replica, port), `primary → replica ${port}`).toBe(true);
      }
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
      expect(
        canConnect(objects, endpoint("latchkey-token-service"), endpoint("external-address-v6"), 5432),
      ).toBe(true);
      expect(canConnect(objects, endpoint("latchkey-token-service"), external, 443)).toBe(false);
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

describe("the NetworkPolicy evaluator itself", () => {
  const policy = (egress: unknown[]): KubeObject => ({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "p", namespace: "app" },
    spec: { podSelector: {}, policyTypes: ["Egress"], egress },
  });
  const client: Endpoint = { name: "client", namespace: "app", labels: {}, ip: "10.244.1.5" };
  const at = (ip: string): Endpoint => ({ name: ip, namespace: "", labels: {}, external: true, ip });

  it("tells addresses inside a CIDR from those outside, per IP family", () => {
    expect(inCidr("10.1.2.3", "10.0.0.0/8")).toBe(true);
    expect(inCidr("11.1.2.3", "10.0.0.0/8")).toBe(false);
    expect(inCidr("192.168.1.1", "0.0.0.0/0")).toBe(true);
    expect(inCidr("2001:db8::1", "0.0.0.0/0")).toBe(false);
    expect(inCidr("2001:db8::1", "2001:db8::/32")).toBe(true);
    expect(inCidr("10.0.0.1", "::/0")).toBe(false);
    expect(() => inCidr("10.0.0.1", "10.0.0.0")).toThrow(/not a CIDR/);
  });

  it("admits an ipBlock's addresses, minus its except ranges", () => {
    const objects = [
      policy([
        { to: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.244.0.0/16"] } }], ports: [{ port: 5432 }] },
      ]),
    ];
    expect(canConnect(objects, client, at("10.1.2.3"), 5432)).toBe(true);
    expect(canConnect(objects, client, at("10.244.3.4"), 5432)).toBe(false);
    expect(canConnect(objects, client, at("203.0.113.10"), 5432)).toBe(false);
    expect(canConnect(objects, client, at("10.1.2.3"), 443)).toBe(false);
  });

  it("matches pods by their address too, and an endpoint with no address by no ipBlock", () => {
    const objects = [policy([{ to: [{ ipBlock: { cidr: "10.244.0.0/16" } }] }])];
    const pod: Endpoint = { name: "pod", namespace: "other", labels: {}, ip: "10.244.9.9" };
    expect(canConnect(objects, client, pod, 80)).toBe(true);
    expect(canConnect(objects, client, { ...pod, ip: undefined }, 80)).toBe(false);
  });
});
