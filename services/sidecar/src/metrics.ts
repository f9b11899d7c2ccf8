import { Counter, Gauge, type Registry } from "prom-client";
import type { EnforcementMode } from "./config.js";
import { DECISION_LABELS, type DecisionLabel } from "./decision.js";

/** The sidecar's Prometheus metrics, with the label sets bound once so the hot path only increments. */
export interface SidecarMetrics {
  /** Counts one decision (`latchkey_sidecar_decisions_total{decision,mode}`). */
  decision(label: DecisionLabel): void;
  /** Counts a request the upstream did not answer (`latchkey_sidecar_upstream_errors_total`). */
  upstreamError(): void;
  /** Open SSE streams and WebSockets (`latchkey_sidecar_live_connections{kind}`). */
  liveConnections(kind: "sse" | "websocket", delta: number): void;
  /** Live connections closed because their key stopped verifying. */
  liveCutOff(kind: "sse" | "websocket"): void;
}

/**
 * Registers the sidecar's metrics on `registry`. Every decision label is
 * created at zero so dashboards see the series before the first request;
 * `tokenServiceReachable` is read at scrape time.
 */
export function createSidecarMetrics(
  registry: Registry,
  mode: EnforcementMode,
  tokenServiceReachable: () => boolean,
): SidecarMetrics {
  // Readiness does not follow the token-service (see admin-server.ts): this gauge and its alert do.
  new Gauge({
    name: "latchkey_sidecar_token_service_reachable",
    help: "1 while the verifier's last exchange with the token-service succeeded, 0 after a failure.",
    registers: [registry],
    collect() {
      this.set(tokenServiceReachable() ? 1 : 0);
    },
  });
  // The hot path bumps plain numbers; prom-client reads them at scrape time (its own inc hashes
  // the label set on every call).
  const counts = new Map<DecisionLabel, number>(DECISION_LABELS.map((label) => [label, 0]));
  const reported = new Map<DecisionLabel, number>(DECISION_LABELS.map((label) => [label, 0]));
  new Counter({
    name: "latchkey_sidecar_decisions_total",
    help: "Requests decided by the sidecar, by decision and enforcement mode.",
    labelNames: ["decision", "mode"] as const,
    registers: [registry],
    collect() {
      for (const label of DECISION_LABELS) {
        const total = counts.get(label) ?? 0;
        this.labels(label, mode).inc(total - (reported.get(label) ?? 0));
        reported.set(label, total);
      }
    },
  });
  const upstreamErrors = new Counter({
    name: "latchkey_sidecar_upstream_errors_total",
    help: "Requests the upstream app did not answer (connection refused, reset, timeout).",
    registers: [registry],
  });
  const live = new Gauge({
    name: "latchkey_sidecar_live_connections",
    help: "Open SSE streams and WebSockets through the sidecar.",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const cutOff = new Counter({
    name: "latchkey_sidecar_live_connections_cut_off_total",
    help: "SSE streams and WebSockets closed because their key was revoked, disabled or expired.",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  for (const kind of ["sse", "websocket"] as const) {
    live.labels(kind).set(0);
    cutOff.labels(kind).inc(0);
  }
  return {
    decision: (label) => counts.set(label, (counts.get(label) ?? 0) + 1),
    upstreamError: () => upstreamErrors.inc(),
    liveConnections: (kind, delta) => live.labels(kind).inc(delta),
    liveCutOff: (kind) => cutOff.labels(kind).inc(),
  };
}
