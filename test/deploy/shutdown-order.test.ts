import { describe, expect, it } from "vitest";
import { loadSidecarConfig } from "../../services/sidecar/src/config.js";
import { loadTokenServiceConfig } from "../../services/token-service/src/config.js";
import { containerEnvironment } from "./container-environment.js";
import { type Container, findTemplate, podTemplates } from "./pod-templates.js";
import { RENDERINGS } from "./renderings.js";
import { shutdownTimeline } from "./shutdown-timeline.js";

/** Time the kubelet and runtime take to deliver signals and reap processes, kept free. */
const MARGIN_SECONDS = 2;

describe.each(RENDERINGS)("$name: pod shutdown in the kubelet's order", (rendering) => {
  const drainSeconds = (container: Container): number | undefined => {
    const image = container.image ?? "";
    const env = () => containerEnvironment(container, rendering.objects, rendering.overlay);
    if (image.includes("latchkey/sidecar:")) return loadSidecarConfig(env()).shutdownTimeoutMs / 1000;
    if (image.includes("latchkey/token-service:"))
      return loadTokenServiceConfig(env()).shutdownTimeoutMs / 1000;
    return undefined;
  };
  const withSidecars = podTemplates(rendering.objects).filter((template) =>
    (template.spec.initContainers ?? []).some((container) => container.restartPolicy === "Always"),
  );
  const latchkeyPods = podTemplates(rendering.objects).filter((template) =>
    template.spec.containers.some((container) => drainSeconds(container) !== undefined),
  );

  it.each(
    [...new Set([...withSidecars, ...latchkeyPods])].map((template) => [
      template.owner.metadata.name,
      template,
    ]),
  )("%s: the app's preStop and drain, then the sidecars' drains, fit the grace period", (_name, template) => {
    const timeline = shutdownTimeline(template, drainSeconds);
    const summary = timeline.phases
      .map((phase) => `${phase.container} ${phase.start}+${phase.preStop}+${phase.drain}=${phase.end}s`)
      .join(", ");
    expect(timeline.end + MARGIN_SECONDS, summary).toBeLessThanOrEqual(timeline.gracePeriod);
    // A sidecar starts stopping only when the app has exited.
    const appEnd = Math.max(
      ...timeline.phases.filter((phase) => phase.role === "app").map((phase) => phase.end),
    );
    for (const phase of timeline.phases.filter((candidate) => candidate.role === "sidecar")) {
      expect(phase.start, summary).toBeGreaterThanOrEqual(appEnd);
    }
  });
});

describe("the shutdown model itself", () => {
  const dev = RENDERINGS.find((rendering) => rendering.name === "overlay dev");
  if (dev === undefined) throw new Error("no dev rendering");
  const template = findTemplate(dev.objects, "Deployment", "latchkey-example-app");

  it("puts the sidecar's drain after the app's preStop and drain, not beside them", () => {
    const timeline = shutdownTimeline(template, (container) =>
      container.name === "latchkey-sidecar" ? 20 : 7,
    );
    const app = timeline.phases.find((phase) => phase.role === "app");
    const sidecar = timeline.phases.find((phase) => phase.role === "sidecar");
    expect(app).toMatchObject({ start: 0, preStop: 5, drain: 7, end: 12 });
    expect(sidecar).toMatchObject({ start: 12, drain: 20, end: 32 });
    // 32 s: over the 30 s grace period, though each part alone fits.
    expect(timeline.end).toBeGreaterThan(timeline.gracePeriod);
  });

  it("asks an app of unknown drain to declare it", () => {
    expect(() => shutdownTimeline(template, () => undefined)).not.toThrow();
    const undeclared = structuredClone(template.owner) as unknown as {
      spec: { template: { metadata: { annotations?: object } } };
    };
    delete undeclared.spec.template.metadata.annotations;
    const [bare] = podTemplates([undeclared as unknown as (typeof template)["owner"]]);
    expect(() => shutdownTimeline(bare as typeof template, () => undefined)).toThrow(/declare its drain/);
  });
});
