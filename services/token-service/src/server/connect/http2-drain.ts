import type { Http2SecureServer, Http2Server, Http2ServerResponse, ServerHttp2Session } from "node:http2";
import type { Socket } from "node:net";

/** Graceful shutdown of one HTTP/2 server. */
export interface Http2Drain {
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
 * Tracks the connections, sessions and calls of `server` so it can be drained.
 * Node's `server.close()` alone waits forever for client sessions that
 * transports keep open, and does not stop new streams on them.
 */
export function trackHttp2Server(server: Http2Server | Http2SecureServer): Http2Drain {
  const sessions = new Set<ServerHttp2Session>();
  // Raw sockets too: with allowHTTP1 an HTTP/1.1 connection has no session.
  const sockets = new Set<Socket>();
  let inFlight = 0;
  let onChange: (() => void) | undefined;

  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => {
      sessions.delete(session);
      onChange?.();
    });
  });
  server.on("request", (_req: unknown, res: Http2ServerResponse) => {
    inFlight++;
    res.once("close", () => {
      inFlight--;
      onChange?.();
    });
  });
  // Idle once no call runs and every HTTP/2 session has closed itself after
  // its GOAWAY, which is also when its last response has been flushed.
  const idle = () => inFlight === 0 && sessions.size === 0;

  return {
    get inFlight() {
      return inFlight;
    },
    async close(timeoutMs, onForce) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
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
