// The Envoy, Istio and Envoy Gateway examples (deploy/envoy, deploy/istio, deploy/envoy-gateway).
// None of the three can be run here (no Envoy binary, no cluster), so this pins what Latchkey
// relies on in each: the ext_authz listener they name is the one the sidecar settings beside them
// open, the caller is a trusted proxy, failures are closed, paths arrive normalized, live streams
// take the sidecar's proxy, and the Kubernetes objects are valid for their kinds.
import { readFileSync } from "node:fs";
import { parseEnv } from "node:util";
import { describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { loadSidecarConfig, type SidecarConfig } from "../../services/sidecar/src/config.js";
import { schemaErrors, unknownFieldErrors } from "./kubernetes-schema.js";
import type { KubeObject } from "./render-overlay.js";

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML, each field checked by the assertions below.
type Json = Record<string, any>;

const read = (path: string) => readFileSync(path, "utf8");
const documents = (path: string): Json[] => parseAllDocuments(read(path)).map((doc) => doc.toJS() as Json);
/** The sidecar's settings: an env file of the example, over the example app's own settings. */
const sidecarConfig = (...envFiles: string[]): SidecarConfig =>
  loadSidecarConfig(Object.assign({}, ...envFiles.map((file) => parseEnv(read(file)))));
const isTrusted = (config: SidecarConfig, address: string) =>
  config.trustedProxies.list.check(address, address.includes(":") ? "ipv6" : "ipv4");
const EXAMPLE_APP_ENV = "deploy/k8s/components/example-app/sidecar.env";
const exampleApp = sidecarConfig(EXAMPLE_APP_ENV);
const examplePodLabels = (documents("deploy/k8s/components/example-app/deployment.yaml")[0] as Json).spec
  .template.metadata.labels as Record<string, string>;

describe("deploy/envoy: an Envoy bootstrap in front of an app, asking the sidecar beside it", () => {
  const envoy = parseYaml(read("deploy/envoy/envoy.yaml")) as Json;
  const sidecar = sidecarConfig("deploy/envoy/latchkey-sidecar.env");
  const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config as Json;
  const filters = hcm.http_filters as Json[];
  const extAuthz = filters.find((filter) => filter.name === "envoy.filters.http.ext_authz")
    ?.typed_config as Json;
  const clusters = new Map<string, Json>(envoy.static_resources.clusters.map((c: Json) => [c.name, c]));
  const endpoint = (name: string) =>
    clusters.get(name)?.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address as Json;
  const routes = hcm.route_config.virtual_hosts[0].routes as Json[];
  const checked = (route: Json) =>
    route.typed_per_filter_config?.["envoy.filters.http.ext_authz"]?.disabled !== true;

  it("normalizes paths before asking: Latchkey decides on the path the app gets", () => {
    expect(hcm.normalize_path).toBe(true);
    expect(hcm.merge_slashes).toBe(true);
    expect(["REJECT_REQUEST", "UNESCAPE_AND_REDIRECT", "UNESCAPE_AND_FORWARD"]).toContain(
      hcm.path_with_escaped_slashes_action,
    );
  });

  it("asks before routing, over gRPC v3, failing closed, with every header value on its own", () => {
    expect(filters.map((filter) => filter.name)).toEqual([
      "envoy.filters.http.ext_authz",
      "envoy.filters.http.router",
    ]);
    expect(extAuthz).toMatchObject({
      transport_api_version: "V3",
      failure_mode_allow: false,
      encode_raw_headers: true,
    });
    expect(extAuthz.with_request_body).toBeUndefined();
    expect(extAuthz.http_service).toBeUndefined();
  });

  it("names the sidecar's ext_authz listener, over HTTP/2, from an address the sidecar trusts", () => {
    const cluster = extAuthz.grpc_service.envoy_grpc.cluster_name as string;
    expect(clusters.get(cluster)?.typed_extension_protocol_options).toMatchObject({
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        explicit_http_config: { http2_protocol_options: {} },
      },
    });
    expect(endpoint(cluster)).toEqual({
      address: sidecar.extAuthzListen?.host,
      port_value: sidecar.extAuthzListen?.port,
    });
    expect(isTrusted(sidecar, endpoint(cluster).address)).toBe(true);
    expect(endpoint("latchkey_proxy")).toEqual({
      address: sidecar.listen.host,
      port_value: sidecar.listen.port,
    });
    expect(endpoint("app")).toEqual({
      address: sidecar.upstream.hostname,
      port_value: Number(sidecar.upstream.port),
    });
  });

  it("sends WebSockets and event streams through the sidecar's proxy, which closes them on revocation", () => {
    const streams = routes.filter((route) => route.route.cluster === "latchkey_proxy");
    const matched = streams.map((route) => route.match.headers[0].name);
    expect(matched.sort()).toEqual(["accept", "upgrade"]);
    for (const route of streams) {
      expect(checked(route)).toBe(false);
      expect(route.route.timeout).toBe("0s");
    }
    expect(hcm.upgrade_configs).toEqual([{ upgrade_type: "websocket" }]);
  });

  it("checks every other route, and bounds how long a response stream outlives its key", () => {
    const direct = routes.filter((route) => route.route.cluster !== "latchkey_proxy");
    expect(direct.at(-1)).toMatchObject({ match: { prefix: "/" }, route: { cluster: "app" } });
    for (const route of direct) {
      expect(checked(route)).toBe(true);
      expect(route.route.max_stream_duration.max_stream_duration).toMatch(/^\d+s$/);
    }
  });
});

describe("deploy/istio: a CUSTOM AuthorizationPolicy and the mesh's extension provider", () => {
  const mesh = (parseYaml(read("deploy/istio/mesh-config.yaml")) as Json).meshConfig as Json;
  const policy = documents("deploy/istio/authorization-policy.yaml")[0] as Json;
  const entry = documents("deploy/istio/service-entry.yaml")[0] as Json;
  const sidecar = sidecarConfig(EXAMPLE_APP_ENV, "deploy/istio/latchkey-sidecar.env");
  const provider = (mesh.extensionProviders as Json[]).find(
    (p) => p.name === policy.spec.provider.name,
  ) as Json;

  it("delegates every request of the example app's pods to the provider named in the mesh config", () => {
    expect(policy.spec.action).toBe("CUSTOM");
    expect(policy.spec.rules).toEqual([{}]);
    expect(provider.envoyExtAuthzGrpc).toBeDefined();
    for (const [label, value] of Object.entries(policy.spec.selector.matchLabels as Record<string, string>))
      expect(examplePodLabels[label]).toBe(value);
  });

  it("reaches the sidecar's ext_authz listener in the same pod, failing closed", () => {
    const grpc = provider.envoyExtAuthzGrpc as Json;
    expect(grpc.failOpen).toBe(false);
    expect(entry.spec.hosts).toEqual([grpc.service]);
    expect(entry.spec.ports).toEqual([{ name: "grpc", number: grpc.port, protocol: "GRPC" }]);
    expect(grpc.port).toBe(sidecar.extAuthzListen?.port);
    const [address] = (entry.spec.endpoints as Json[]).map((e) => e.address as string);
    expect(address).toBe(sidecar.extAuthzListen?.host);
    expect(isTrusted(sidecar, address as string)).toBe(true);
  });

  it("merges slashes as well as normalizing (Istio's default BASE does not)", () => {
    expect(["MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"]).toContain(mesh.pathNormalization.normalization);
  });

  it("gives mesh clients the app's own port, behind the pod's Envoy", async () => {
    const objects = [
      ...documents("deploy/istio/service.yaml"),
      ...documents("deploy/istio/network-policy.yaml"),
    ];
    expect(await schemaErrors(objects as KubeObject[])).toEqual([]);
    expect(unknownFieldErrors(objects as KubeObject[])).toEqual([]);
    const [service, networkPolicy] = objects as Json[] as [Json, Json];
    expect(service.spec.ports[0].targetPort).toBe(Number(exampleApp.upstream.port));
    expect(networkPolicy.spec.ingress[0].ports[0].port).toBe(Number(exampleApp.upstream.port));
  });
});

describe("deploy/envoy-gateway: a SecurityPolicy on the example app's route", () => {
  const security = documents("deploy/envoy-gateway/security-policy.yaml")[0] as Json;
  const paths = documents("deploy/envoy-gateway/client-traffic-policy.yaml")[0] as Json;
  const routes = documents("deploy/envoy-gateway/httproute.yaml");
  const services = documents("deploy/envoy-gateway/service.yaml");
  const networkPolicy = documents("deploy/envoy-gateway/network-policy.yaml")[0] as Json;
  const sidecar = sidecarConfig(EXAMPLE_APP_ENV, "deploy/envoy-gateway/latchkey-sidecar.env");
  const service = (name: string) => services.find((s) => s.metadata.name === name);
  const exampleService = documents("deploy/k8s/components/example-app/service.yaml")[0] as Json;

  it("checks the app's route at the sidecars' ext_authz listener, failing closed", () => {
    expect(security.spec.extAuth.failOpen).toBe(false);
    const target = security.spec.targetRefs[0] as Json;
    const route = routes.find((r) => r.metadata.name === target.name) as Json;
    expect(target.kind).toBe("HTTPRoute");
    expect(route.spec.rules[0].backendRefs[0].name).toBe("latchkey-example-app-direct");
    const backend = security.spec.extAuth.grpc.backendRefs[0] as Json;
    const extAuthz = service(backend.name) as Json;
    expect(extAuthz.spec.ports).toEqual([
      {
        name: "grpc",
        port: backend.port,
        targetPort: sidecar.extAuthzListen?.port,
        appProtocol: "kubernetes.io/h2c",
      },
    ]);
    for (const s of services)
      expect(s.spec.selector).toEqual({
        "app.kubernetes.io/name": examplePodLabels["app.kubernetes.io/name"],
      });
    expect(service("latchkey-example-app-direct")?.spec.ports[0].targetPort).toBe(
      Number(exampleApp.upstream.port),
    );
  });

  it("sends live streams, unchecked by the gateway, to the sidecar's proxy", () => {
    const streams = routes.find((route) => route.metadata.name !== security.spec.targetRefs[0].name) as Json;
    expect(streams.spec.rules[0].backendRefs).toEqual([
      { name: exampleService.metadata.name, port: exampleService.spec.ports[0].port },
    ]);
    expect(exampleService.spec.ports[0].targetPort).toBe(sidecar.listen.port);
    const names = (streams.spec.rules[0].matches as Json[]).map((match) => match.headers[0].name).sort();
    expect(names).toEqual(["accept", "upgrade"]);
  });

  it("normalizes paths on the gateway the routes hang from", () => {
    expect(paths.spec.targetRefs[0]).toMatchObject({
      kind: "Gateway",
      name: routes[0]?.spec.parentRefs[0].name,
    });
    expect(["RejectRequest", "UnescapeAndRedirect", "UnescapeAndForward"]).toContain(
      paths.spec.path.escapedSlashesAction,
    );
    expect(paths.spec.path.disableMergeSlashes).toBe(false);
  });

  it("opens the ext_authz listener and the app's port to the gateway's pods only, and trusts their range", async () => {
    const objects = [...services, networkPolicy] as KubeObject[];
    expect(await schemaErrors(objects)).toEqual([]);
    expect(unknownFieldErrors(objects)).toEqual([]);
    const rule = networkPolicy.spec.ingress[0] as Json;
    expect(rule.from[0].namespaceSelector.matchLabels).toEqual({
      "kubernetes.io/metadata.name": "envoy-gateway-system",
    });
    expect((rule.ports as Json[]).map((p) => p.port).sort()).toEqual(
      [sidecar.extAuthzListen?.port, Number(exampleApp.upstream.port)].sort(),
    );
    expect(sidecar.trustedProxies.entries.length).toBeGreaterThan(2);
    expect(isTrusted(sidecar, "10.244.1.7")).toBe(true);
  });
});
