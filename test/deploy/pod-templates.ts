import { type KubeObject, objectId } from "./render-overlay.js";

/** The parts of a container the checks read. */
export interface Container {
  readonly name: string;
  readonly image?: string;
  readonly restartPolicy?: string;
  readonly ports?: readonly { readonly name?: string; readonly containerPort: number }[];
  readonly env?: readonly {
    readonly name: string;
    readonly valueFrom?: {
      readonly secretKeyRef?: { readonly name: string; readonly key: string; readonly optional?: boolean };
      readonly configMapKeyRef?: { readonly name: string; readonly key: string; readonly optional?: boolean };
    };
  }[];
  readonly envFrom?: readonly {
    readonly configMapRef?: { readonly name: string; readonly optional?: boolean };
    readonly secretRef?: { readonly name: string; readonly optional?: boolean };
  }[];
  readonly livenessProbe?: unknown;
  readonly readinessProbe?: unknown;
  readonly startupProbe?: unknown;
  readonly resources?: {
    readonly requests?: Readonly<Record<string, string | number>>;
    readonly limits?: Readonly<Record<string, string | number>>;
  };
  readonly securityContext?: SecurityContext;
  readonly volumeMounts?: readonly { readonly name: string; readonly mountPath: string }[];
}

interface SecurityContext {
  readonly runAsNonRoot?: boolean;
  readonly runAsUser?: number;
  readonly allowPrivilegeEscalation?: boolean;
  readonly readOnlyRootFilesystem?: boolean;
  readonly capabilities?: { readonly drop?: readonly string[]; readonly add?: readonly string[] };
  readonly seccompProfile?: { readonly type: string };
}

/** The parts of a pod spec the checks read. */
export interface PodSpec {
  readonly containers: readonly Container[];
  readonly initContainers?: readonly Container[];
  readonly securityContext?: SecurityContext;
  readonly enableServiceLinks?: boolean;
  readonly automountServiceAccountToken?: boolean;
  readonly topologySpreadConstraints?: readonly {
    readonly maxSkew?: number;
    readonly topologyKey: string;
    readonly whenUnsatisfiable: string;
    readonly nodeTaintsPolicy?: "Honor" | "Ignore";
    readonly nodeAffinityPolicy?: "Honor" | "Ignore";
    readonly labelSelector?: { readonly matchLabels?: Readonly<Record<string, string>> };
  }[];
  readonly volumes?: readonly {
    readonly name: string;
    readonly configMap?: { readonly name: string };
    readonly secret?: { readonly secretName: string };
  }[];
}

/**
 * How a container runs: `server` (a regular container of a long-running pod),
 * `sidecar` (an init container with restartPolicy Always), `init` (a run-to-completion
 * init container) or `job` (a container of a Job's pod).
 */
export type ContainerRole = "server" | "sidecar" | "init" | "job";

/** A workload's pod template. */
export interface PodTemplate {
  /** The Deployment, StatefulSet, Job, … that holds it. */
  readonly owner: KubeObject;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly spec: PodSpec;
}

/** A container with where it sits. */
export interface PlacedContainer {
  readonly template: PodTemplate;
  readonly container: Container;
  readonly role: ContainerRole;
  /** "Deployment/latchkey-token-service › migrate", for messages. */
  readonly id: string;
}

const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);

interface TemplateHolder {
  readonly spec?: {
    readonly template?: {
      readonly metadata?: { readonly labels?: Record<string, string> };
      readonly spec: PodSpec;
    };
    readonly jobTemplate?: { readonly spec: { readonly template: { readonly spec: PodSpec } } };
  };
}

/** The pod templates of every workload among `objects` (CronJobs included). */
export function podTemplates(objects: readonly KubeObject[]): PodTemplate[] {
  const templates: PodTemplate[] = [];
  for (const object of objects) {
    const holder = object as unknown as TemplateHolder;
    const namespace = object.metadata.namespace ?? "default";
    if (WORKLOAD_KINDS.has(object.kind) && holder.spec?.template !== undefined) {
      const { template } = holder.spec;
      templates.push({
        owner: object,
        namespace,
        labels: template.metadata?.labels ?? {},
        spec: template.spec,
      });
    } else if (object.kind === "CronJob" && holder.spec?.jobTemplate !== undefined) {
      templates.push({
        owner: object,
        namespace,
        labels: {},
        spec: holder.spec.jobTemplate.spec.template.spec,
      });
    }
  }
  return templates;
}

/** Every container of every pod template, init containers included. */
export function containersOf(objects: readonly KubeObject[]): PlacedContainer[] {
  const placed: PlacedContainer[] = [];
  for (const template of podTemplates(objects)) {
    const runsToCompletion = template.owner.kind === "Job" || template.owner.kind === "CronJob";
    for (const container of template.spec.initContainers ?? []) {
      const role: ContainerRole = container.restartPolicy === "Always" ? "sidecar" : "init";
      placed.push({ template, container, role, id: `${objectId(template.owner)} › ${container.name}` });
    }
    for (const container of template.spec.containers) {
      const role: ContainerRole = runsToCompletion ? "job" : "server";
      placed.push({ template, container, role, id: `${objectId(template.owner)} › ${container.name}` });
    }
  }
  return placed;
}

/** The one object of `kind` named `name`, or a failure naming what is there. */
export function findObject(objects: readonly KubeObject[], kind: string, name: string): KubeObject {
  const found = objects.find((object) => object.kind === kind && object.metadata.name === name);
  if (found === undefined) {
    const present = objects.map(objectId).join(", ");
    throw new Error(`no ${kind}/${name} among ${present}`);
  }
  return found;
}

/** The pod template of the workload of `kind` named `name`. */
export function findTemplate(objects: readonly KubeObject[], kind: string, name: string): PodTemplate {
  const owner = findObject(objects, kind, name);
  const template = podTemplates([owner])[0];
  if (template === undefined) throw new Error(`${kind}/${name} has no pod template`);
  return template;
}

/** The container named `name` (regular or init) of a pod template. */
export function findContainer(template: PodTemplate, name: string): Container {
  const all = [...(template.spec.initContainers ?? []), ...template.spec.containers];
  const found = all.find((container) => container.name === name);
  if (found === undefined) throw new Error(`${objectId(template.owner)} has no container ${name}`);
  return found;
}
