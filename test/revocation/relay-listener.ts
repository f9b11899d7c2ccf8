// What the test relays share: a loopback listener on a port the kernel picks, the relay's URL in
// the upstream's scheme, and a close that cuts every relayed connection.
import type { Server, Socket } from "node:net";

/** A relay listening on 127.0.0.1. */
export interface ListeningRelay {
  /** `nats://127.0.0.1:<port>` (the upstream URL's scheme, the relay's port). */
  readonly url: string;
  /** Destroys every connection in `sockets` and stops listening. */
  close(): Promise<void>;
}

/**
 * Starts `server` on a free loopback port for a relay to `upstream`.
 *
 * @example
 * ```ts
 * const { url, close } = await listenRelay(server, sockets, new URL(nats.url));
 * ```
 */
export async function listenRelay(
  server: Server,
  sockets: Set<Socket>,
  upstream: URL,
): Promise<ListeningRelay> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `${upstream.protocol}//127.0.0.1:${port}`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
