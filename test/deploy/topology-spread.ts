import type { PodSpec } from "./pod-templates.js";

/**
 * A small model of the scheduler's PodTopologySpread filter, enough to ask "does a
 * scale-out to N pods get scheduled on these nodes?" for the manifests' own constraints.
 * It covers maxSkew, whenUnsatisfiable, nodeTaintsPolicy and NoSchedule taints; each pod
 * goes to the feasible node with the fewest pods of its kind (what the scoring prefers).
 * Node affinity, resources and minDomains are out of scope.
 */

/** A node, with its labels (hostname, zone) and taints. */
export interface ModelNode {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly taints?: readonly { readonly key: string; readonly effect: string }[];
}

function tolerates(spec: PodSpec, node: ModelNode): boolean {
  const tolerations = (spec as { tolerations?: { key?: string; operator?: string }[] }).tolerations ?? [];
  return (node.taints ?? [])
    .filter((taint) => taint.effect === "NoSchedule" || taint.effect === "NoExecute")
    .every((taint) =>
      tolerations.some(
        (toleration) => toleration.operator === "Exists" && (toleration.key ?? taint.key) === taint.key,
      ),
    );
}

/**
 * Places `count` pods of `spec` one after another and returns how many went to each
 * node; pods the filter rejects everywhere stay Pending (counted under "").
 */
export function placePods(spec: PodSpec, nodes: readonly ModelNode[], count: number): Map<string, number> {
  const placed = new Map<string, number>(nodes.map((node) => [node.name, 0]));
  const constraints = spec.topologySpreadConstraints ?? [];
  const podsIn = (key: string, domain: string, among: readonly ModelNode[]) =>
    among
      .filter((node) => node.labels[key] === domain)
      .reduce((sum, node) => sum + (placed.get(node.name) ?? 0), 0);
  let pending = 0;
  for (let pod = 0; pod < count; pod++) {
    const feasible = nodes.filter((node) => {
      if (!tolerates(spec, node)) return false;
      return constraints.every((constraint) => {
        if (constraint.whenUnsatisfiable !== "DoNotSchedule") return true;
        const key = constraint.topologyKey;
        const domain = node.labels[key];
        if (domain === undefined) return false;
        // The default (Ignore) counts every node with the key, tainted or not.
        const eligible = nodes.filter(
          (candidate) =>
            candidate.labels[key] !== undefined &&
            (constraint.nodeTaintsPolicy !== "Honor" || tolerates(spec, candidate)),
        );
        const domains = [...new Set(eligible.map((candidate) => candidate.labels[key] as string))];
        const minimum = Math.min(...domains.map((name) => podsIn(key, name, eligible)));
        return podsIn(key, domain, eligible) + 1 - minimum <= (constraint.maxSkew ?? 1);
      });
    });
    const target = feasible.sort((a, b) => (placed.get(a.name) ?? 0) - (placed.get(b.name) ?? 0))[0];
    if (target === undefined) pending += 1;
    else placed.set(target.name, (placed.get(target.name) ?? 0) + 1);
  }
  if (pending > 0) placed.set("", pending);
  return placed;
}
