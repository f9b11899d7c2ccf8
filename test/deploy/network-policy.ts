import { BlockList, isIP } from "node:net";
import type { KubeObject } from "./render-overlay.js";

/**
 * A small NetworkPolicy evaluator: enough of the semantics of networking.k8s.io/v1 to
 * answer "may A open a TCP connection to B on port P?" for the manifests' own policies,
 * as a conforming CNI would. Traffic from a pod's node (kubelet probes) is out of scope.
 *
 * `ipBlock` peers match by address: in the CIDR and in none of its `except` ranges, of the
 * same IP family. Pods have addresses too, and the model lets an ipBlock match them, as
 * Calico and most CNIs do for egress (the API leaves it to the implementation): for the
 * "who else could connect" checks the wider reading is the safe one.
 */

interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly {
    readonly key: string;
    readonly operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    readonly values?: readonly string[];
  }[];
}

interface Peer {
  readonly podSelector?: LabelSelector;
  readonly namespaceSelector?: LabelSelector;
  readonly ipBlock?: { readonly cidr: string; readonly except?: readonly string[] };
}

interface PolicyPort {
  readonly protocol?: string;
  readonly port?: number | string;
  readonly endPort?: number;
}

interface Rule {
  readonly from?: readonly Peer[];
  readonly to?: readonly Peer[];
  readonly ports?: readonly PolicyPort[];
}

interface NetworkPolicySpec {
  readonly podSelector: LabelSelector;
  readonly policyTypes?: readonly ("Ingress" | "Egress")[];
  readonly ingress?: readonly Rule[];
  readonly egress?: readonly Rule[];
}

/** One end of a connection: a pod (by namespace and labels) or an address outside the cluster. */
export interface Endpoint {
  /** For messages. */
  readonly name: string;
  readonly namespace: string;
  /** Labels of its namespace besides `kubernetes.io/metadata.name`, which every namespace has. */
  readonly namespaceLabels?: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  /** Named container ports, for policies that name a port. */
  readonly ports?: Readonly<Record<string, number>>;
  /** An address outside the cluster: matched by ipBlock peers only, and has no policies. */
  readonly external?: boolean;
  /** Its IP address (v4 or v6), which ipBlock peers match; an endpoint without one matches none. */
  readonly ip?: string;
}

function selects(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const value = labels[key];
    const holds =
      operator === "In"
        ? value !== undefined && values.includes(value)
        : operator === "NotIn"
          ? value === undefined || !values.includes(value)
          : operator === "Exists"
            ? value !== undefined
            : value === undefined;
    if (!holds) return false;
  }
  return true;
}

function namespaceLabels(endpoint: Endpoint): Record<string, string> {
  // Every namespace carries this label (Kubernetes 1.22+).
  return { ...endpoint.namespaceLabels, "kubernetes.io/metadata.name": endpoint.namespace };
}

/** Whether `ip` lies in `cidr` ("10.0.0.0/8", "::/0"); addresses of the other family never do. */
export function inCidr(ip: string, cidr: string): boolean {
  const [network = "", prefix = ""] = cidr.split("/");
  const family = isIP(network);
  if (family === 0 || !/^\d+$/.test(prefix)) throw new Error(`not a CIDR: ${cidr}`);
  if (isIP(ip) !== family) return false;
  const type = family === 4 ? "ipv4" : "ipv6";
  const list = new BlockList();
  list.addSubnet(network, Number(prefix), type);
  return list.check(ip, type);
}

function peerMatches(peer: Peer, policyNamespace: string, other: Endpoint): boolean {
  if (peer.ipBlock !== undefined) {
    const { cidr, except = [] } = peer.ipBlock;
    const ip = other.ip;
    return ip !== undefined && inCidr(ip, cidr) && !except.some((range) => inCidr(ip, range));
  }
  if (other.external === true) return false;
  const inNamespace =
    peer.namespaceSelector === undefined
      ? other.namespace === policyNamespace
      : selects(peer.namespaceSelector, namespaceLabels(other));
  const podMatches = peer.podSelector === undefined || selects(peer.podSelector, other.labels);
  return inNamespace && podMatches;
}

function portMatches(
  ports: readonly PolicyPort[] | undefined,
  port: number,
  protocol: string,
  target: Endpoint,
) {
  if (ports === undefined || ports.length === 0) return true;
  return ports.some((candidate) => {
    if ((candidate.protocol ?? "TCP") !== protocol) return false;
    if (candidate.port === undefined) return true;
    const number = typeof candidate.port === "number" ? candidate.port : target.ports?.[candidate.port];
    if (number === undefined) return false;
    return candidate.endPort === undefined ? number === port : port >= number && port <= candidate.endPort;
  });
}

function policyTypes(spec: NetworkPolicySpec): readonly string[] {
  return spec.policyTypes ?? (spec.egress === undefined ? ["Ingress"] : ["Ingress", "Egress"]);
}

function admits(
  policies: readonly KubeObject[],
  direction: "Ingress" | "Egress",
  subject: Endpoint,
  other: Endpoint,
  port: number,
  protocol: string,
  target: Endpoint,
): boolean {
  if (subject.external === true) return true;
  const applicable = policies.filter((policy) => {
    const spec = policy.spec as NetworkPolicySpec;
    return (
      (policy.metadata.namespace ?? "default") === subject.namespace &&
      policyTypes(spec).includes(direction) &&
      selects(spec.podSelector, subject.labels)
    );
  });
  // A pod no policy selects for this direction is not isolated.
  if (applicable.length === 0) return true;
  return applicable.some((policy) => {
    const spec = policy.spec as NetworkPolicySpec;
    const rules = (direction === "Ingress" ? spec.ingress : spec.egress) ?? [];
    return rules.some((rule) => {
      const peers = direction === "Ingress" ? rule.from : rule.to;
      const peerOk =
        peers === undefined ||
        peers.length === 0 ||
        peers.some((peer) => peerMatches(peer, subject.namespace, other));
      return peerOk && portMatches(rule.ports, port, protocol, target);
    });
  });
}

/** Whether `from` may connect to `to` on `port`: `from`'s egress and `to`'s ingress both allow it. */
export function canConnect(
  objects: readonly KubeObject[],
  from: Endpoint,
  to: Endpoint,
  port: number,
  protocol = "TCP",
): boolean {
  const policies = objects.filter((object) => object.kind === "NetworkPolicy");
  return (
    admits(policies, "Egress", from, to, port, protocol, to) &&
    admits(policies, "Ingress", to, from, port, protocol, to)
  );
}
