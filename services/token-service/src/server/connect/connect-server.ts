import { setMaxListeners } from "node:events";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { tracingEnabled } from "@latchkey/telemetry";
import type { Logger } from "pino";
import type { ConsoleRoute } from "../console/console-route.js";
import { createErrorInterceptor } from "../shared/error-interceptor.js";
import { type CallRecord, createLoggingInterceptor } from "../shared/logging-interceptor.js";
import { REQUEST_ID_HEADER, resolveRequestId } from "../shared/request-id.js";
import { createTracingInterceptor } from "../shared/rpc-span.js";
import {
  DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
  type ListenOptions,
  type RunningServer,
} from "../shared/running-server.js";
import type { ServiceRegistration } from "../shared/service-registration.js";
import { type CallInfo, contextValuesFor } from "./connect-context.js";
import { connectRoutes } from "./connect-routes.js";
import { type CorsOptions, createCorsPolicy } from "./cors-policy.js";
import { refuseGrpcOverHttp1 } from "./grpc-over-http1.js";
import { createHttpListener, type HttpListenerOptions, type NodeRequestListener } from "./http-listener.js";

/** Options of {@link createConnectServer}. */
export interface ConnectServerOptions extends HttpListenerOptions {
  readonly services: readonly ServiceRegistration[];
  readonly listen: ListenOptions;
  /** Browser origins allowed to call; none by default. */
  readonly cors?: CorsOptions;
  readonly logger: Logger;
  /** Run inside the logging and error interceptors, so their failures are logged and made safe. */
  readonly interceptors?: readonly Interceptor[];
  /** Largest request message accepted; defaults to 64 KiB. */
  readonly maxReceiveMessageBytes?: number;
  /** Told about every finished call (metrics). */
  readonly onCallFinished?: (record: CallRecord) => void;
  /** The admin console's static files under `/console`; no such route when left out. */
  readonly console?: ConsoleRoute;
}

/**
 * Starts the main listener: Connect, gRPC and gRPC-Web for `services` on one
 * port (connect-node on `node:http2`, and on `node:http` for HTTP/1.1: plain
 * curl, browsers, proxies that speak HTTP/1.1 upstream). gRPC needs HTTP/2;
 * over HTTP/1.1 it is refused with a clear error. Each call gets a request id (the
 * client's `x-request-id` when sane), echoed in the `x-request-id` response
 * header; errors that are not a `ConnectError` reach the client as
 * `internal error` and the log with their cause.
 *
 * @example
 * ```ts
 * const server = await createConnectServer({
 *   services: [registerService(TokenService, tokens), health, ...createReflectionServices(services)],
 *   listen: { host: "0.0.0.0", port: 8081 },
 *   logger,
 * });
 * process.once("SIGTERM", () => server.close(10_000));
 * ```
 */
export async function createConnectServer(options: ConnectServerOptions): Promise<RunningServer> {
  const { logger } = options;
  const shutdown = new AbortController();
  // Every in-flight call listens to it; that many listeners is expected, not a leak.
  setMaxListeners(0, shutdown.signal);
  const callInfos = new WeakMap<object, CallInfo>();
  const handler = connectNodeAdapter({
    routes: connectRoutes(options.services),
    interceptors: [
      // Outermost, so the log line and the error mapping run inside the call's span.
      ...(tracingEnabled() ? [createTracingInterceptor()] : []),
      createLoggingInterceptor(logger, options.onCallFinished),
      createErrorInterceptor(logger),
      ...(options.interceptors ?? []),
    ],
    readMaxBytes: options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    // connect-es ignores unknown JSON fields by default; refuse them, as binary ones are refused.
    jsonOptions: { ignoreUnknownFields: false },
    shutdownSignal: shutdown.signal,
    contextValues: (req) =>
      contextValuesFor(callInfos.get(req) ?? { requestId: resolveRequestId(undefined) }),
  });
  const cors = createCorsPolicy(options.cors ?? { allowedOrigins: [], maxAgeS: 0 });
  const listener: NodeRequestListener = (req, res) => {
    const fromClient = req.headers[REQUEST_ID_HEADER];
    const { remoteAddress, remotePort } = req.socket ?? {};
    // Same form as grpc-js's getPeer(), so both listeners log peers alike.
    const peer = remoteAddress === undefined ? undefined : `${remoteAddress}:${remotePort}`;
    const info: CallInfo = {
      requestId: resolveRequestId(typeof fromClient === "string" ? fromClient : undefined),
      ...(peer === undefined ? {} : { peer }),
    };
    callInfos.set(req, info);
    // Set on the node response so error responses and 404s carry it as well.
    res.setHeader(REQUEST_ID_HEADER, info.requestId);
    // The console shares this origin, and RPC errors echo input (`unknown compression "<script>…"`,
    // reachable by a plain GET): no answer here may be sniffed as anything but its declared type.
    res.setHeader("x-content-type-options", "nosniff");
    if (options.console?.handle(req, res) || cors.handle(req, res) || refuseGrpcOverHttp1(req, res)) return;
    handler(req, res);
  };
  const { server, drain } = createHttpListener(options, listener);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info(
    { host: options.listen.host, port, tls: options.tls !== undefined },
    "connect server listening",
  );

  let closing: Promise<void> | undefined;
  return {
    port,
    close(timeoutMs) {
      closing ??= drain
        .close(timeoutMs, () => {
          logger.warn({ inFlight: drain.inFlight }, "shutdown timeout: cancelling in-flight calls");
          shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
        })
        .then(() => logger.info({ port }, "connect server closed"));
      return closing;
    },
  };
}
