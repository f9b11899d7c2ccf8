// deploy/observability against the code: the alert rules pass `promtool check rules` and their
// own `promtool test rules` cases, the Prometheus Operator's copy in components/monitoring is the
// same rules, every alert's runbook is a section of docs/operations.md, and every metric the
// dashboard and the rules query is one a running stack exports: a token-service on real
// PostgreSQL and NATS and a sidecar in front of an app, both scraped over HTTP.
import { spawnSync } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { findObject } from "../deploy/pod-templates.js";
import { REPO_ROOT, renderKustomization } from "../deploy/render-overlay.js";
import { send } from "../harness/http-client.js";
import { type NatsServer, startNats } from "../harness/index.js";
import { type RecordingUpstream, startRecordingUpstream } from "../sidecar/recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import { scrape } from "../token-service/scrape-metrics.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { exportedNames, metricNamesIn } from "./promql-metric-names.js";

const OBSERVABILITY = join(REPO_ROOT, "deploy", "observability");
const RULES_FILE = join(OBSERVABILITY, "latchkey.rules.yaml");
/** The dashboard's datasource variable, as Grafana writes it. */
const DATASOURCE_VARIABLE = ["$", "{datasource}"].join("");

interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly annotations?: Record<string, string>;
}
interface RuleFile {
  readonly groups: readonly { readonly name: string; readonly rules: readonly Rule[] }[];
}
interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { readonly uid: string };
  readonly targets?: readonly { readonly expr: string; readonly refId: string }[];
}
interface Dashboard {
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly { readonly name: string; readonly definition?: string }[] };
}

const rules = parse(readFileSync(RULES_FILE, "utf8")) as RuleFile;
const dashboard = JSON.parse(
  readFileSync(join(OBSERVABILITY, "latchkey-dashboard.json"), "utf8"),
) as Dashboard;
const alerts = rules.groups.flatMap((group) => group.rules);

/** promtool from Debian's `prometheus` package; missing is a failure (CI installs it), not a skip. */
function promtool(args: string[]): { status: number | null; output: string } {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/bin", "/usr/local/bin"];
  const binary = dirs
    .filter((dir) => dir !== "")
    .map((dir) => join(dir, "promtool"))
    .find((candidate) => {
      try {
        accessSync(candidate, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  if (binary === undefined) {
    throw new Error("promtool is not installed; run as root: apt-get install -y prometheus");
  }
  const result = spawnSync(binary, args, { cwd: OBSERVABILITY, encoding: "utf8" });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** Every PromQL expression the dashboard runs: panel targets and variable queries. */
function dashboardQueries(): { where: string; expr: string }[] {
  const queries = dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ where: `panel "${panel.title}"`, expr: target.expr })),
  );
  for (const variable of dashboard.templating.list) {
    // Grafana's label_values(metric, label): the metric is a selector, the label is not.
    const metric = /^label_values\((.+),\s*\w+\)$/.exec(variable.definition ?? "")?.[1];
    if (metric !== undefined) queries.push({ where: `variable $${variable.name}`, expr: metric });
  }
  return queries;
}

describe("the alert rules", () => {
  it("pass promtool check rules", () => {
    const { status, output } = promtool(["check", "rules", RULES_FILE]);
    expect(output).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(status).toBe(0);
  });

  it("fire as their promtool unit tests say, and only then", () => {
    const { status, output } = promtool(["test", "rules", "latchkey.rules.test.yaml"]);
    expect(output).toContain("SUCCESS");
    expect(status).toBe(0);
    // Every alert has a case.
    const tests = readFileSync(join(OBSERVABILITY, "latchkey.rules.test.yaml"), "utf8");
    for (const alert of alerts) expect(tests).toContain(`alertname: ${alert.alert}`);
  });

  it("cover revocation lag, outbox age, the fail-closed rate and a verifier without currency", () => {
    const names = alerts.map((alert) => alert.alert);
    expect(names).toEqual(
      expect.arrayContaining([
        "LatchkeyRevocationLagHigh",
        "LatchkeyOutboxStuck",
        "LatchkeyFailClosedRate",
        "LatchkeyVerifierWithoutCurrency",
      ]),
    );
  });

  it("each name a runbook section of docs/operations.md", () => {
    const operations = readFileSync(join(REPO_ROOT, "docs", "operations.md"), "utf8");
    const anchors = new Set(
      [...operations.matchAll(/^#{2,4} (.+)$/gm)].map((heading) =>
        (heading[1] ?? "")
          .toLowerCase()
          .replace(/[^\w\- ]/g, "")
          .replace(/ /g, "-"),
      ),
    );
    for (const alert of alerts) {
      const runbook = alert.annotations?.runbook ?? "";
      expect(runbook, `${alert.alert}'s runbook`).toBe(`docs/operations.md#${alert.alert?.toLowerCase()}`);
      expect(anchors.has(runbook.split("#")[1] ?? ""), `${runbook} is a heading`).toBe(true);
    }
  });

  it("ship the same groups to the Prometheus Operator (components/monitoring)", () => {
    const objects = renderKustomization("../../test/deploy/fixtures/production-monitoring");
    const rule = findObject(objects, "PrometheusRule", "latchkey");
    expect(rule.apiVersion).toBe("monitoring.coreos.com/v1");
    expect((rule.spec as RuleFile).groups).toEqual(rules.groups);
  });
});

describe("the dashboard", () => {
  it("is a Grafana dashboard whose every graph queries the chosen Prometheus", () => {
    expect(dashboard.uid).toBe("latchkey-overview");
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const graphs = dashboard.panels.filter((panel) => panel.type !== "row");
    expect(graphs.length).toBeGreaterThan(10);
    for (const panel of graphs) {
      // Grafana's variable syntax, not a template string.
      expect(panel.datasource?.uid, panel.title).toBe(DATASOURCE_VARIABLE);
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    }
  });

  it("shows each metric a person watches", () => {
    const queried = new Set(dashboardQueries().flatMap(({ expr }) => metricNamesIn(expr)));
    for (const name of [
      "latchkey_verifier_revocation_lag_seconds_bucket",
      "latchkey_verifier_cache_hits_total",
      "latchkey_verifier_cache_misses_total",
      "latchkey_verifier_verify_rpc_duration_seconds_bucket",
      "latchkey_verifier_unavailable_total",
      "latchkey_sidecar_decisions_total",
      "latchkey_token_service_outbox_pending_rows",
      "latchkey_token_service_outbox_oldest_pending_age_seconds",
      "latchkey_token_service_nats_connected",
      "latchkey_verifier_nats_connected",
      "latchkey_verifier_currency_age_seconds",
      "latchkey_token_service_row_cache_currency_age_seconds",
    ]) {
      expect(queried.has(name), name).toBe(true);
    }
  });
});

describe("the metrics the dashboard and the rules query", () => {
  let nats: NatsServer;
  let service: TestService;
  let upstream: RecordingUpstream;
  let sidecar: SidecarProcess;
  let exported: Set<string>;

  beforeAll(async () => {
    [nats, upstream] = await Promise.all([startNats(), startRecordingUpstream()]);
    service = await startTestService({ natsUrl: nats.url, settings: { metricsListen: "127.0.0.1:0" } });
    sidecar = await spawnSidecar({
      upstream: upstream.url,
      tokenServiceUrl: service.grpcUrl,
      natsUrl: nats.url,
    });
    const sidecarMetrics = await send(sidecar.adminUrl, "GET", "/metrics");
    expect(sidecarMetrics.status).toBe(200);
    exported = new Set([
      ...exportedNames(await scrape(service.handle.metricsPort ?? 0)),
      ...exportedNames(sidecarMetrics.body),
    ]);
  }, 60_000);

  afterAll(async () => {
    await sidecar?.stop();
    await service?.close();
    await upstream?.app.close();
    await nats?.dispose();
  });

  it("are all exported by the token-service or the sidecar", () => {
    const queries = [
      ...dashboardQueries(),
      ...alerts.map((alert) => ({ where: `alert ${alert.alert}`, expr: alert.expr })),
    ];
    const unknown: string[] = [];
    for (const { where, expr } of queries) {
      const names = metricNamesIn(expr);
      expect(names.length, `${where} selects a metric`).toBeGreaterThan(0);
      for (const name of names) if (!exported.has(name)) unknown.push(`${where}: ${name}`);
    }
    expect(unknown).toEqual([]);
  });
});
