import type { Server as HttpServer } from "node:http";
import type { Http2SecureServer, Http2Server, ServerHttp2Session } from "node:http2";
import type { Server as NetServer, Socket } from "node:net";

/** Graceful shutdown of one listener and the HTTP servers it hands connections to. */
export interface HttpDrain {
  /** Calls that have started and not yet finished. */
  readonly inFlight: number;
  /**
   * Stops accepting connections and new calls, waits up to `timeoutMs` for
   * in-flight calls, then runs `onForce` (if calls remain) and destroys every
   * connection. Resolves once the server is closed.
   */
  close(timeoutMs: number, onForce?: () => void): Promise<void>;
}

/**
 * Tracks the connections of `listener` and the sessions and calls of the
 * `http` servers serving them (the listener itself with TLS; an HTTP/2 and an
 * HTTP/1 server fed by the cleartext sniffer otherwise), so they can be
 * drained. Node's `server.close()` alone waits forever for client sessions
 * that transports keep open, and does not stop new streams on them.
 */
export function trackHttpServers(
  listener: NetServer,
  http: readonly (Http2Server | Http2SecureServer | HttpServer)[],
): HttpDrain {
  const sessions = new Set<ServerHttp2Session>();
  // Raw sockets too: an HTTP/1.1 connection has no session, and a connection
  // still being sniffed belongs to no server yet.
  const sockets = new Set<Socket>();
  let inFlight = 0;
  let onChange: (() => void) | undefined;

  listener.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  for (const server of http) {
    server.on("session", (session: ServerHttp2Session) => {
      sessions.add(session);
      session.once("close", () => {
        sessions.delete(session);
        onChange?.();
      });
    });
    server.on("request", (_req: unknown, res: NodeJS.EventEmitter) => {
      inFlight++;
      res.once("close", () => {
        inFlight--;
        onChange?.();
      });
    });
  }
  // Idle once no call runs and every HTTP/2 session has closed itself after
  // its GOAWAY, which is also when its last response has been flushed.
  const idle = () => inFlight === 0 && sessions.size === 0;

  return {
    get inFlight() {
      return inFlight;
    },
    async close(timeoutMs, onForce) {
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      for (const server of http) {
        // An HTTP/1 server's close() also closes its idle kept-alive connections. A server fed by
        // the sniffer never listened, so its callback only reports that; the listener's is awaited.
        if (server !== listener) server.close(() => {});
      }
      for (const session of sessions) {
        // GOAWAY: running streams finish, new ones are refused; an idle session closes now.
        session.close();
      }
      if (!idle()) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          onChange = () => idle() && resolve();
          timer = setTimeout(resolve, timeoutMs);
        });
        clearTimeout(timer);
        onChange = undefined;
      }
      if (!idle()) {
        onForce?.();
        for (const session of sessions) {
          session.destroy();
        }
      }
      for (const socket of sockets) {
        // HTTP/1.1 keep-alive connections, or what a forced stop left: flush, then close.
        inFlight > 0 ? socket.destroy() : socket.destroySoon();
      }
      await closed;
    },
  };
}
