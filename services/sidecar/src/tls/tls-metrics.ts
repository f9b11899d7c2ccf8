import type { TlsKeyPair } from "@latchkey/config";
import { Counter, Gauge, type Registry } from "prom-client";

/**
 * The HTTPS listener's metrics: when its certificate expires
 * (`latchkey_sidecar_tls_certificate_expiry_timestamp_seconds`, for an alert
 * days ahead) and how its reloads went (`latchkey_sidecar_tls_reloads_total{result}`:
 * a `refused` reload means new files are there that the sidecar will not use).
 *
 * @returns the function to hand every reload to.
 * @example
 * ```ts
 * const onReload = createTlsMetrics(registry, pair);
 * createHttpsListener({ ..., onReload });
 * ```
 */
export function createTlsMetrics(
  registry: Registry,
  pair: TlsKeyPair,
): (result: "applied" | "refused", pair: TlsKeyPair) => void {
  const expiry = new Gauge({
    name: "latchkey_sidecar_tls_certificate_expiry_timestamp_seconds",
    help: "When the HTTPS listener's certificate in use expires (Unix time).",
    registers: [registry],
  });
  const reloads = new Counter({
    name: "latchkey_sidecar_tls_reloads_total",
    help: "Reloads of the HTTPS certificate after its files changed: applied, or refused (the old one kept).",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  for (const result of ["applied", "refused"] as const) reloads.labels(result).inc(0);
  expiry.set(pair.notAfter.getTime() / 1000);
  return (result, current) => {
    reloads.labels(result).inc();
    expiry.set(current.notAfter.getTime() / 1000);
  };
}
