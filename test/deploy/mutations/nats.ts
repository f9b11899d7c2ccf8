// Provisional: the NATS engineer owns this file and the tests that catch these; it is
// reconciled at merge.
import { type Mutation, replaceOnce } from "./mutation.js";

/** Breakages of the NATS manifests. */
export const mutations: Mutation[] = [
  {
    name: "NATS POD_NAME env removed",
    file: "deploy/k8s/base/nats/statefulset.yaml",
    // The whole env block (POD_NAME is its only entry), so the manifest stays valid.
    apply: (text) =>
      replaceOnce(
        text,
        /\n\s+env:\n(\s+#.*\n)*\s+- name: POD_NAME\n\s+valueFrom:\n\s+fieldRef:\n\s+fieldPath: metadata\.name/,
        "",
      ),
  },
  {
    name: "NATS config made unparseable",
    file: "deploy/k8s/base/nats/nats.conf",
    apply: (text) => `${text}\njetstream {\n  store_dir: /data/jetstream\n`,
  },
];
