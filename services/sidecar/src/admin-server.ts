import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import type { Registry } from "prom-client";

/** Options of {@link createAdminServer}. */
export interface AdminServerOptions {
  readonly registry: Registry;
  /** Whether the sidecar can take traffic: verifier healthy, upstream configured, not shutting down. */
  readonly isReady: () => boolean;
  readonly logger: Logger;
}

/**
 * The admin listener, kept off the client-facing port: `/healthz` (the process
 * answers), `/readyz` (503 until the verifier can reach the token-service and
 * while shutting down) and `/metrics` (Prometheus text, the verifier's series
 * included when it registers them on the same registry).
 */
export function createAdminServer(options: AdminServerOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/healthz") {
      json(res, 200, { status: "ok" });
    } else if (path === "/readyz") {
      const ready = options.isReady();
      json(res, ready ? 200 : 503, { status: ready ? "ready" : "not ready" });
    } else if (path === "/metrics") {
      options.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": options.registry.contentType });
          res.end(text);
        },
        (error: unknown) => {
          options.logger.error({ err: error }, "collecting metrics failed");
          json(res, 500, { status: "error" });
        },
      );
    } else {
      json(res, 404, { status: "not found" });
    }
  });
}

function json(res: import("node:http").ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(text);
}
