import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { ListenOptions, RunningServer } from "../shared/running-server.js";

/** Options of {@link createMetricsServer}. */
export interface MetricsServerOptions {
  readonly registry: Registry;
  readonly listen: ListenOptions;
  readonly logger: Logger;
}

/**
 * Serves `GET /metrics` (Prometheus text) over plain HTTP on a port of its
 * own (`LATCHKEY_METRICS_LISTEN`), away from the RPC listeners: a scrape never
 * competes with Verify for a listener, and needs neither TLS nor HTTP/2.
 *
 * @example
 * ```ts
 * const metrics = await createMetricsServer({ registry, listen: { host: "0.0.0.0", port: 9090 }, logger });
 * ```
 */
export async function createMetricsServer(options: MetricsServerOptions): Promise<RunningServer> {
  const { registry, logger } = options;
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: unknown) => {
        logger.warn({ err: error }, "metrics collection failed");
        res.writeHead(500).end();
      },
    );
  });
  server.listen(options.listen.port, options.listen.host);
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  logger.info({ host: options.listen.host, port }, "metrics server listening");
  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
