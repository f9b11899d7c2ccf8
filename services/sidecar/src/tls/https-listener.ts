import type { IncomingMessage, ServerResponse } from "node:http";
import { createSecureServer, type Http2SecureServer, type Http2Session } from "node:http2";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { TlsKeyPair } from "@latchkey/config";
import type { Logger } from "pino";
import { type CertificateReloader, createCertificateReloader } from "./certificate-reloader.js";

/** Options of {@link createHttpsListener}. */
export interface HttpsListenerOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** The pair read at start (`readTlsKeyPair`). */
  readonly pair: TlsKeyPair;
  /** The request handler of the plain listener: it serves HTTP/1.x and HTTP/2 alike. */
  readonly onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  /** The plain listener's `upgrade` handler (WebSocket handshakes arrive over HTTP/1.1). */
  readonly onUpgrade: (req: IncomingMessage, socket: Socket, head: Buffer) => void;
  /** The plain listener's `clientError` handler (malformed HTTP/1.x). */
  readonly onClientError: (error: Error, socket: Duplex) => void;
  readonly logger: Logger;
  /** Told about every certificate reload (metrics). */
  readonly onReload?: (result: "applied" | "refused", pair: TlsKeyPair) => void;
  /** See `CertificateReloaderOptions.debounceMs`. */
  readonly reloadDebounceMs?: number;
}

/** The HTTPS listener, before it listens. */
export interface HttpsListener {
  readonly server: Http2SecureServer;
  readonly reloader: CertificateReloader;
  /**
   * Stops accepting and stops watching the certificate; HTTP/2 sessions get a
   * GOAWAY and finish their streams, idle HTTP/1.1 connections are closed and
   * busy ones after their response. After `timeoutMs` everything left is
   * destroyed. Resolves when every connection is gone.
   */
  close(timeoutMs: number): Promise<void>;
}

// TLS 1.2 and 1.3 only (Node's default floor, stated so a reload can never lower it); at most 128
// concurrent streams per HTTP/2 connection, as nginx allows (Node's default is unlimited).
const SECURE_CONTEXT = { minVersion: "TLSv1.2" } as const;
const HTTP2_SETTINGS = { maxConcurrentStreams: 128 };

/**
 * The sidecar's HTTPS listener: HTTP/2 for clients that offer it in ALPN, and
 * HTTP/1.1 for the rest (`allowHTTP1`), both on the plain listener's
 * handlers, so a request over TLS is decided and forwarded the same way. Its
 * certificate is reloaded when its files change (`certificate-reloader.ts`)
 * with `setSecureContext`, which only new handshakes use, so open
 * connections are not dropped. Node's HTTP/2 server does not close idle
 * connections itself on shutdown (its HTTP/1.1 side has no
 * `closeIdleConnections`), so this tracks them.
 *
 * @example
 * ```ts
 * const https = createHttpsListener({ certFile, keyFile, pair, onRequest, onUpgrade, onClientError, logger });
 * https.server.listen(8443);
 * ```
 */
export function createHttpsListener(options: HttpsListenerOptions): HttpsListener {
  const { logger } = options;
  const server = createSecureServer({
    ...SECURE_CONTEXT,
    cert: options.pair.cert,
    key: options.pair.key,
    allowHTTP1: true,
    settings: HTTP2_SETTINGS,
  });
  const sockets = new Set<TLSSocket>();
  // Every TCP connection, handshakes still under way included: those keep `close` waiting (up to the
  // 120 s handshake timeout) and are cut when the drain time is up.
  const connections = new Set<Socket>();
  const sessions = new Set<Http2Session>();
  /** Responses in progress per HTTP/1.1 connection. */
  const busy = new Map<Duplex, number>();
  const upgraded = new WeakSet<Duplex>();
  let closing = false;

  server.on("connection", (socket: Socket) => {
    connections.add(socket);
    socket.once("close", () => connections.delete(socket));
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      busy.delete(socket);
    });
  });
  server.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  // Registered before the handler, so a response that starts during shutdown says `connection: close`.
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (req.httpVersionMajor === 2) return;
    const socket = req.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    if (closing) res.shouldKeepAlive = false;
    res.once("close", () => {
      const left = (busy.get(socket) ?? 1) - 1;
      busy.set(socket, left);
      if (closing && left === 0 && !upgraded.has(socket)) socket.end();
    });
  });
  server.on("request", options.onRequest);
  server.on("upgrade", (_req: IncomingMessage, socket: Duplex) => upgraded.add(socket));
  server.on("upgrade", options.onUpgrade);
  server.on("clientError", options.onClientError);

  const reloader = createCertificateReloader({
    certFile: options.certFile,
    keyFile: options.keyFile,
    current: options.pair,
    apply: (pair) => server.setSecureContext({ ...SECURE_CONTEXT, cert: pair.cert, key: pair.key }),
    logger,
    ...(options.onReload ? { onReload: options.onReload } : {}),
    ...(options.reloadDebounceMs === undefined ? {} : { debounceMs: options.reloadDebounceMs }),
  });

  let closed: Promise<void> | undefined;
  return {
    server,
    reloader,
    close(timeoutMs) {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        reloader.close();
        if (!server.listening) {
          resolve();
          return;
        }
        server.close(() => resolve());
        for (const session of sessions) session.close();
        for (const socket of sockets) {
          if (socket.alpnProtocol !== "h2" && (busy.get(socket) ?? 0) === 0 && !upgraded.has(socket)) {
            socket.destroy();
          }
        }
        const timer = setTimeout(() => {
          for (const session of sessions) session.destroy();
          for (const socket of sockets) socket.destroy();
          for (const socket of connections) socket.destroy();
        }, timeoutMs);
        timer.unref();
      });
      return closed;
    },
  };
}
