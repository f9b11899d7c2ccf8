import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import type { Registry } from "prom-client";

/** Options of {@link createAdminServer}. */
export interface AdminServerOptions {
  readonly registry: Registry;
  /** Whether the sidecar can serve its policy: listening, policy loaded, not shutting down. */
  readonly isReady: () => boolean;
  /** Whether the verifier's last exchange with the token-service succeeded; reported, never gating. */
  readonly tokenServiceReachable: () => boolean;
  readonly logger: Logger;
}

/**
 * The admin listener, kept off the client-facing port:
 * - `/healthz` (liveness): the process answers.
 * - `/readyz` (readiness): the sidecar can serve its policy, so 200 from the
 *   moment it listens until shutdown starts (then 503). It does not follow the
 *   token-service: during an outage public routes and cached keys keep working
 *   and unknown keys get 503 per request, whereas a readiness that followed
 *   the token-service would take every pod of every protected app out of its
 *   Service at once. The body reports `tokenService` (`reachable` or
 *   `unreachable`), as does the gauge `latchkey_sidecar_token_service_reachable`.
 * - `/metrics`: Prometheus text, the verifier's series included when it
 *   registers them on the same registry.
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
      json(res, ready ? 200 : 503, {
        status: ready ? "ready" : "not ready",
        tokenService: options.tokenServiceReachable() ? "reachable" : "unreachable",
      });
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
