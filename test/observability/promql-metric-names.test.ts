import { describe, expect, it } from "vitest";
import { exportedNames, metricNamesIn } from "./promql-metric-names.js";

describe("metricNamesIn", () => {
  it("finds the selectors of a nested expression and nothing else", () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (namespace, pod, le) (rate(a_seconds_bucket{namespace=~"$namespace"}[$__rate_interval])))',
      ),
    ).toEqual(["a_seconds_bucket"]);
    expect(metricNamesIn("sum by (pod) (rate(x_total[5m])) / (sum(rate(y_total[5m])) + 1e3)")).toEqual([
      "x_total",
      "y_total",
    ]);
  });

  it("skips label lists, keywords, modifiers, durations and strings", () => {
    expect(
      metricNamesIn(
        'up == 0 or on (pod) group_left (node) kube_pod_info{job="kube"} unless ignoring (le) b offset 5m > bool 1',
      ),
    ).toEqual(["b", "kube_pod_info", "up"]);
    expect(metricNamesIn('label_replace(z, "dst", "$1", "src", "(.*)")')).toEqual(["z"]);
  });

  it("reads a bare metric name, and a name that looks like a keyword in another case is still checked", () => {
    expect(metricNamesIn("latchkey_verifier_nats_connected == 0")).toEqual([
      "latchkey_verifier_nats_connected",
    ]);
    expect(metricNamesIn("sum(my_SUM_total)")).toEqual(["my_SUM_total"]);
  });
});

describe("exportedNames", () => {
  it("expands histograms and summaries to their series", () => {
    const names = exportedNames(
      "# TYPE h histogram\n# TYPE s summary\n# TYPE c_total counter\n# TYPE g gauge\n",
    );
    expect([...names].sort()).toEqual([
      "c_total",
      "g",
      "h",
      "h_bucket",
      "h_count",
      "h_sum",
      "s",
      "s_count",
      "s_sum",
    ]);
  });
});
