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
  // One field per label, all present from the start: one object shape, an increment per request.
  const counts = Object.fromEntries(DECISION_LABELS.map((label) => [label, 0])) as Record<
    DecisionLabel,
    number
  >;
  const reported = { ...counts };
  const decisions = new Counter({
    name: "latchkey_sidecar_decisions_total",
    help: "Requests decided by the sidecar, by decision and enforcement mode.",
    labelNames: ["decision", "mode"] as const,
    registers: [registry],
    collect() {
      for (const [label, child] of children) {
        const total = counts[label];
        child.inc(total - reported[label]);
        reported[label] = total;
      }
    },
  });
  // Label children bound once: a scrape does no label hashing either.
  const children = DECISION_LABELS.map((label) => [label, decisions.labels(label, mode)] as const);
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
  const liveChildren = { sse: live.labels("sse"), websocket: live.labels("websocket") };
  const cutOffChildren = { sse: cutOff.labels("sse"), websocket: cutOff.labels("websocket") };
  for (const kind of ["sse", "websocket"] as const) {
    liveChildren[kind].set(0);
    cutOffChildren[kind].inc(0);
  }
  return {
    decision: (label) => {
      counts[label] += 1;
    },
    upstreamError: () => upstreamErrors.inc(),
    liveConnections: (kind, delta) => liveChildren[kind].inc(delta),
    liveCutOff: (kind) => cutOffChildren[kind].inc(),
  };
}
