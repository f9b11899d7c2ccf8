// Breakages of the NATS manifests that the deploy tests must catch. The mutation check
// applies each one to a copy of the repository and asserts that the suite fails.

/** One breakage: `apply` turns the text of `file` (relative to the repository root) into the broken one. */
export interface Mutation {
  readonly name: string;
  readonly file: string;
  readonly apply: (text: string) => string;
}

/** Replaces `search` in `text`, and fails loudly when it is not there: a mutation that changes nothing proves nothing. */
function replaceOnce(text: string, search: string | RegExp, replacement: string): string {
  const changed = text.replace(search, replacement);
  if (changed === text) throw new Error(`mutation found nothing to change: ${String(search)}`);
  return changed;
}

/** The NATS mutations (issue 17), each caught by test/deploy/nats-config.test.ts or nats-auth.security.test.ts. */
export const mutations: { name: string; file: string; apply: (text: string) => string }[] = [
  {
    name: "NATS: the POD_NAME env (server_name) is removed",
    file: "deploy/k8s/base/nats/statefulset.yaml",
    apply: (text) =>
      replaceOnce(
        text,
        / {12}- name: POD_NAME\n {14}valueFrom:\n {16}fieldRef:\n {18}fieldPath: metadata\.name\n/,
        "",
      ),
  },
  {
    name: "NATS: the base config is unparseable (a block left open)",
    file: "deploy/k8s/base/nats/nats.conf",
    apply: (text) => replaceOnce(text, /^jetstream \{$/m, "jetstream {\n  limits {"),
  },
  {
    name: "NATS: the production cluster config is unparseable (a block left open)",
    file: "deploy/k8s/overlays/production/nats-cluster.conf",
    apply: (text) => replaceOnce(text, /^cluster \{$/m, "cluster {\n  pool {"),
  },
  {
    name: "NATS: verifiers may publish key events",
    file: "deploy/k8s/base/nats/auth.conf",
    apply: (text) =>
      replaceOnce(
        replaceOnce(text, /^ {4}deny: \["latchkey\.keys\.>".*\n/m, ""),
        '      "latchkey.verifiers.ack.*"\n',
        '      "latchkey.keys.>"\n      "latchkey.verifiers.ack.*"\n',
      ),
  },
  {
    name: "NATS: clients may connect without TLS",
    file: "deploy/k8s/base/nats/nats.conf",
    apply: (text) => replaceOnce(text, /^tls \{[^}]*\}\n/m, ""),
  },
  {
    name: "NATS: cluster routes without mutual TLS",
    file: "deploy/k8s/overlays/production/nats-cluster.conf",
    apply: (text) => replaceOnce(text, /^ {2}tls \{[^}]*\}\n/m, ""),
  },
  {
    name: "NATS: no lame duck preStop hook",
    file: "deploy/k8s/base/nats/statefulset.yaml",
    apply: (text) => replaceOnce(text, / {10}lifecycle:\n(?: {12}.*\n)+/, ""),
  },
];
