// Issue 17, defect 7: PostgreSQL must admit every connection the token-service
// can open at the worst moment: the HPA at maxReplicas plus a rollout's surge,
// each pod with its full pool plus the LISTEN connection the outbox publisher
// holds outside it (test/token-service/connection-budget.test.ts shows that one
// on a running service). Recomputed from the rendered production-cnpg overlay.
import { describe, expect, it } from "vitest";
import { loadTokenServiceConfig } from "../../services/token-service/src/config.js";
import { containerEnvironment } from "./container-environment.js";
import { findContainer, findObject, findTemplate } from "./pod-templates.js";
import { renderOverlay } from "./render-overlay.js";

/** superuser_reserved_connections' default: not usable by the token-service. */
const SUPERUSER_RESERVED = 3;
/** The operator's instance manager, replicas' checks, an admin's psql. */
const OPERATOR_AND_ADMIN = 10;

function surgePods(maxSurge: string | number | undefined, replicas: number): number {
  if (maxSurge === undefined) return Math.ceil(replicas * 0.25);
  if (typeof maxSurge === "number") return maxSurge;
  // Kubernetes rounds a percentage surge up.
  return Math.ceil((replicas * Number(maxSurge.replace("%", ""))) / 100);
}

describe("overlay production-cnpg: the connection budget", () => {
  const objects = renderOverlay("production-cnpg");

  it("sizes max_connections for the HPA's maximum plus surge, each pod's pool plus its LISTEN connection", () => {
    const template = findTemplate(objects, "Deployment", "latchkey-token-service");
    const config = loadTokenServiceConfig(
      containerEnvironment(findContainer(template, "token-service"), objects, "production-cnpg"),
    );
    const hpa = findObject(objects, "HorizontalPodAutoscaler", "latchkey-token-service").spec as {
      maxReplicas: number;
    };
    const strategy = (template.owner.spec as { strategy: { rollingUpdate: { maxSurge?: string | number } } })
      .strategy;
    const pods = hpa.maxReplicas + surgePods(strategy.rollingUpdate.maxSurge, hpa.maxReplicas);
    const perPod = config.dbPoolMax + 1;
    const needed = pods * perPod + SUPERUSER_RESERVED + OPERATOR_AND_ADMIN;
    const cluster = findObject(objects, "Cluster", "latchkey-postgres").spec as {
      postgresql: { parameters: Record<string, string> };
    };
    const maxConnections = Number(cluster.postgresql.parameters.max_connections);
    expect(pods).toBe(15);
    expect(maxConnections).toBeGreaterThanOrEqual(needed);
  });
});
