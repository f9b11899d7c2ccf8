// A TCP relay that hands the upstream's bytes to the client late: between a
// token-service replica and NATS it makes that replica receive every key event
// ~delayMs after everyone else, as a slow or distant network link would.
// Client → upstream bytes go through at once, so the replica's publishes and
// requests reach NATS on time; only what NATS sends back is late.
import { connect as connectTcp, createServer, type Socket } from "node:net";
import { listenRelay } from "./relay-listener.js";

/** A running relay. */
export interface DelayingRelay {
  /** `nats://127.0.0.1:<port>` (or whatever scheme the upstream URL had). */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Listens on a free loopback port and relays each connection to `upstream`
 * (`nats://host:port`), delaying upstream → client bytes by `delayMs`, in order.
 *
 * @example
 * ```ts
 * const relay = await startDelayingRelay(nats.url, 400);
 * const replica = await startTestService({ databaseUrl, natsUrl: relay.url });
 * ```
 */
export async function startDelayingRelay(upstream: string, delayMs: number): Promise<DelayingRelay> {
  const target = new URL(upstream);
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const server = createServer((client) => {
    const remote = connectTcp(Number(target.port), target.hostname);
    track(client);
    track(remote);
    client.pipe(remote);
    // Timers of one duration fire in the order they were set, so chunks stay in order.
    remote.on("data", (chunk: Buffer) => {
      setTimeout(() => {
        if (!client.destroyed) client.write(chunk);
      }, delayMs);
    });
    remote.once("close", () => setTimeout(() => client.destroy(), delayMs));
    client.once("close", () => remote.destroy());
    client.on("error", () => remote.destroy());
    remote.on("error", () => client.destroy());
  });
  return listenRelay(server, sockets, target);
}
