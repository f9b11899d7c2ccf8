import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { TlsOptions } from "../shared/running-server.js";
import { type HttpDrain, trackHttpServers } from "./http-drain.js";
import { sniffHttpVersion } from "./http-version-sniffer.js";

/** How long a new cleartext connection may take to show which HTTP it speaks, unless told. */
export const DEFAULT_SNIFF_TIMEOUT_MS = 10_000;

/** A request listener both node servers accept. */
export type NodeRequestListener = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Options of {@link createHttpListener}. */
export interface HttpListenerOptions {
  /** TLS: HTTP/2 or HTTP/1.1 by ALPN. Without it, h2c and HTTP/1.1 by first bytes. */
  readonly tls?: TlsOptions;
  /** Cleartext: how long a new connection may take to show which HTTP it speaks. */
  readonly sniffTimeoutMs?: number;
  /** Cleartext HTTP/1: how long a request's headers may take; Node's default (60 s) unless told. */
  readonly http1HeadersTimeoutMs?: number;
}

/** A not yet listening server for `requestListener`, and the drain that closes it. */
export interface HttpListener {
  readonly server: net.Server;
  readonly drain: HttpDrain;
}

/**
 * One port for every HTTP version: with TLS, `http2.createSecureServer` with
 * `allowHTTP1` (ALPN decides); in cleartext, a `net.Server` that sniffs each
 * connection's first bytes and hands it to an `http2` or an `http` server,
 * both running `requestListener` (Node's `http2.createServer` has no HTTP/1
 * fallback). A start of the preface that turns into something else gets a 400.
 *
 * @example
 * ```ts
 * const { server, drain } = createHttpListener({}, (req, res) => connectHandler(req, res));
 * server.listen(8081);
 * ```
 */
export function createHttpListener(
  options: HttpListenerOptions,
  requestListener: NodeRequestListener,
): HttpListener {
  if (options.tls) {
    const { cert, key } = options.tls;
    const secure = http2.createSecureServer({ cert, key, allowHTTP1: true }, requestListener);
    return { server: secure, drain: trackHttpServers(secure, [secure]) };
  }
  const h2 = http2.createServer(requestListener);
  const headersTimeout = options.http1HeadersTimeoutMs;
  const h1 = http.createServer(
    // Node checks the headers timeout on this interval (30 s by default): never longer than it.
    headersTimeout === undefined
      ? {}
      : { headersTimeout, connectionsCheckingInterval: Math.min(headersTimeout, 30_000) },
    requestListener,
  );
  const sniffTimeoutMs = options.sniffTimeoutMs ?? DEFAULT_SNIFF_TIMEOUT_MS;
  const server = net.createServer(async (socket) => {
    const version = await sniffHttpVersion(socket, sniffTimeoutMs);
    if (version === "bad-preface") {
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    } else if (version !== undefined) {
      (version === "h2" ? h2 : h1).emit("connection", socket);
    }
  });
  // Node's HTTP/1 server starts tracking its connections (headers and request timeouts,
  // closeIdleConnections) when it hears `listening`; this one never listens itself, so it is
  // told once the real listener is up, or a client could dribble headers forever.
  server.once("listening", () => h1.emit("listening"));
  return { server, drain: trackHttpServers(server, [h2, h1]) };
}
