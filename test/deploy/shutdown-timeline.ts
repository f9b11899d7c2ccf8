import type { Container, PodTemplate } from "./pod-templates.js";

/**
 * The worst-case shutdown of a pod, as the kubelet orders it (Kubernetes 1.29+ with
 * native sidecars): at deletion the regular containers run their preStop hooks, then get
 * SIGTERM and drain, all at once; only when every one of them has exited are the native
 * sidecars (init containers with restartPolicy Always) stopped, in the reverse of their
 * order in the spec, each with its own preStop and drain. One terminationGracePeriodSeconds
 * covers all of it: whatever still runs when it ends is killed. So a sidecar's drain comes
 * after the app's preStop and the app's drain, not beside them.
 */

/** One container's part of the shutdown, in seconds from the deletion. */
export interface ShutdownPhase {
  readonly container: string;
  readonly role: "app" | "sidecar";
  readonly start: number;
  readonly preStop: number;
  readonly drain: number;
  readonly end: number;
}

/** The modelled shutdown of a pod. */
export interface ShutdownTimeline {
  readonly gracePeriod: number;
  readonly phases: readonly ShutdownPhase[];
  /** When the last container has exited, at worst. */
  readonly end: number;
}

/**
 * The pod-template annotation in which an app declares how long it may take to drain
 * after SIGTERM (its own setting, which the manifests cannot otherwise see).
 */
export const APP_SHUTDOWN_ANNOTATION = "latchkey.dev/app-shutdown-seconds";

function preStopSeconds(container: Container, id: string): number {
  const preStop = (container as { lifecycle?: { preStop?: Record<string, unknown> } }).lifecycle?.preStop;
  if (preStop === undefined) return 0;
  const sleep = preStop.sleep as { seconds?: number } | undefined;
  if (sleep?.seconds === undefined) {
    // An exec or httpGet hook takes as long as it takes: the model cannot bound it.
    throw new Error(`${id}: only a preStop sleep has a known length`);
  }
  return sleep.seconds;
}

/**
 * Computes the timeline. `drainSeconds` gives a container's drain after SIGTERM (for a
 * Latchkey service its LATCHKEY_SHUTDOWN_TIMEOUT_MS); when it returns undefined, the
 * pod's {@link APP_SHUTDOWN_ANNOTATION} applies, and a pod without one is an error.
 */
export function shutdownTimeline(
  template: PodTemplate,
  drainSeconds: (container: Container) => number | undefined,
): ShutdownTimeline {
  const owner = `${template.owner.kind}/${template.owner.metadata.name}`;
  const annotations =
    ((template.owner.spec as { template?: { metadata?: { annotations?: Record<string, string> } } }).template
      ?.metadata?.annotations as Record<string, string> | undefined) ?? {};
  const declared = annotations[APP_SHUTDOWN_ANNOTATION];
  const drainOf = (container: Container): number => {
    const known = drainSeconds(container);
    if (known !== undefined) return known;
    if (declared === undefined || !/^\d+$/.test(declared)) {
      throw new Error(
        `${owner} › ${container.name}: declare its drain in the ${APP_SHUTDOWN_ANNOTATION} annotation`,
      );
    }
    return Number(declared);
  };
  const phases: ShutdownPhase[] = [];
  for (const container of template.spec.containers) {
    const preStop = preStopSeconds(container, `${owner} › ${container.name}`);
    const drain = drainOf(container);
    phases.push({ container: container.name, role: "app", start: 0, preStop, drain, end: preStop + drain });
  }
  let clock = Math.max(0, ...phases.map((phase) => phase.end));
  const sidecars = (template.spec.initContainers ?? []).filter(
    (container) => container.restartPolicy === "Always",
  );
  for (const container of [...sidecars].reverse()) {
    const preStop = preStopSeconds(container, `${owner} › ${container.name}`);
    const drain = drainOf(container);
    phases.push({
      container: container.name,
      role: "sidecar",
      start: clock,
      preStop,
      drain,
      end: clock + preStop + drain,
    });
    clock += preStop + drain;
  }
  const gracePeriod =
    (template.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30;
  return { gracePeriod, phases, end: clock };
}
