// The metric names a PromQL expression selects, for checking dashboards and alert rules
// against what the services export. Written by hand: no maintained PromQL parser exists
// for Node, and the rules and dashboard use a small part of the language. What it reads:
// vector selectors (`name{…}[…]`), functions and aggregations (`f(…)`, `sum by (…) (…)`),
// binary operators and their modifiers (`on`, `ignoring`, `group_left`), numbers and
// durations, and Grafana's variables (`$__rate_interval`, `"$namespace"`).

/** Aggregation operators and keywords that look like identifiers but select nothing. */
const NOT_METRICS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
  "and",
  "or",
  "unless",
  "offset",
  "bool",
  "atan2",
  "inf",
  "nan",
]);

/** Clauses whose parenthesized list names labels, not metrics. */
const LABEL_LISTS = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

/**
 * The metric names `expr` selects, sorted and unique.
 *
 * @example
 * ```ts
 * metricNamesIn('sum by (pod) (rate(latchkey_verifier_cache_hits_total{namespace=~"$ns"}[5m]))');
 * // ["latchkey_verifier_cache_hits_total"]
 * ```
 */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
    .replace(/#[^\n]*/g, "") // comments
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges and subqueries
    .replace(LABEL_LISTS, " ")
    .replace(/\b(group_left|group_right)\b/g, " ");
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.$:])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const name = match[0];
    const rest = stripped.slice((match.index ?? 0) + name.length);
    if (/^\s*\(/.test(rest)) continue; // a function call or an aggregation
    if (NOT_METRICS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names].sort();
}

/**
 * The metric names a Prometheus text exposition declares (its `# TYPE` lines), with
 * the series names a histogram or summary exposes.
 *
 * @example
 * ```ts
 * exportedNames("# TYPE x_seconds histogram\n"); // Set { "x_seconds", "x_seconds_bucket", "x_seconds_sum", "x_seconds_count" }
 * ```
 */
export function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name = "", type] = match;
    names.add(name);
    if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name + suffix);
    if (type === "summary") for (const suffix of ["_sum", "_count"]) names.add(name + suffix);
  }
  return names;
}
