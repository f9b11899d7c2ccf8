import { setMaxListeners } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { createErrorInterceptor } from "../shared/error-interceptor.js";
import { type CallRecord, createLoggingInterceptor } from "../shared/logging-interceptor.js";
import { REQUEST_ID_HEADER, resolveRequestId } from "../shared/request-id.js";
import {
  DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
  type ListenOptions,
  type RunningServer,
  type TlsOptions,
} from "../shared/running-server.js";
import type { ServiceRegistration } from "../shared/service-registration.js";
import { type CallInfo, contextValuesFor } from "./connect-context.js";
import { connectRoutes } from "./connect-routes.js";
import { type CorsOptions, createCorsPolicy } from "./cors-policy.js";
import { refuseGrpcOverHttp1 } from "./grpc-over-http1.js";
import { trackHttpServers } from "./http-drain.js";
import { sniffHttpVersion } from "./http-version-sniffer.js";

/** How long a new cleartext connection may take to show which HTTP it speaks, unless told. */
export const DEFAULT_SNIFF_TIMEOUT_MS = 10_000;

/** Options of {@link createConnectServer}. */
export interface ConnectServerOptions {
  readonly services: readonly ServiceRegistration[];
  readonly listen: ListenOptions;
  /**
   * Serve TLS, HTTP/2 or HTTP/1.1 by ALPN. Without it, cleartext HTTP/2 (h2c)
   * and HTTP/1.1 share the port, told apart by each connection's first bytes.
   */
  readonly tls?: TlsOptions;
  /** Cleartext only: how long a new connection may take to show which HTTP it speaks; 10 s by default. */
  readonly sniffTimeoutMs?: number;
  /**
   * Cleartext HTTP/1: how long a request's headers may take to arrive; Node's
   * default (60 s) unless told. Tests shorten it.
   */
  readonly http1HeadersTimeoutMs?: number;
  /** Browser origins allowed to call; none by default. */
  readonly cors?: CorsOptions;
  readonly logger: Logger;
  /** Run inside the logging and error interceptors, so their failures are logged and made safe. */
  readonly interceptors?: readonly Interceptor[];
  /** Largest request message accepted; defaults to 64 KiB. */
  readonly maxReceiveMessageBytes?: number;
  /** Told about every finished call (metrics). */
  readonly onCallFinished?: (record: CallRecord) => void;
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
  const listener = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
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
    if (cors.handle(req, res) || refuseGrpcOverHttp1(req, res)) return;
    handler(req, res);
  };
  let server: net.Server;
  let drain: ReturnType<typeof trackHttpServers>;
  if (options.tls) {
    const secure = http2.createSecureServer(
      { cert: options.tls.cert, key: options.tls.key, allowHTTP1: true },
      listener,
    );
    server = secure;
    drain = trackHttpServers(secure, [secure]);
  } else {
    const h2 = http2.createServer(listener);
    const headersTimeout = options.http1HeadersTimeoutMs;
    const h1 = http.createServer(
      // Node checks the headers timeout on this interval (30 s by default): never longer than it.
      headersTimeout === undefined
        ? {}
        : { headersTimeout, connectionsCheckingInterval: Math.min(headersTimeout, 30_000) },
      listener,
    );
    const sniffTimeoutMs = options.sniffTimeoutMs ?? DEFAULT_SNIFF_TIMEOUT_MS;
    server = net.createServer(async (socket) => {
      const version = await sniffHttpVersion(socket, sniffTimeoutMs);
      if (version === "bad-preface") {
        socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      } else if (version !== undefined) {
        (version === "h2" ? h2 : h1).emit("connection", socket);
      }
    });
    drain = trackHttpServers(server, [h2, h1]);
    // Node's HTTP/1 server starts tracking its connections (headers and request timeouts,
    // closeIdleConnections) when it hears `listening`; this one never listens itself, so it is
    // told once the real listener is up, or a client could dribble headers forever.
    server.once("listening", () => h1.emit("listening"));
  }

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
