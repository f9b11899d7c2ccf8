// A TCP relay that a test can partition: while partitioned, no byte crosses in
// either direction and new connections wait, but nothing is closed or reset,
// as when a network path silently stops carrying packets (the client's TCP
// stack keeps its connection "up"). Bytes are held, not dropped: TCP
// retransmits, so a healed path delivers what was sent meanwhile. Given several upstreams it also
// balances, as a Kubernetes Service does: each connection goes to the next one that accepts it.
import { connect as connectTcp, createServer, type Socket } from "node:net";
import { listenRelay } from "./relay-listener.js";

/** A running relay. */
export interface PartitionRelay {
  /** `nats://127.0.0.1:<port>` (the upstream URL's scheme, the relay's port). */
  readonly url: string;
  /** Stops all traffic through the relay, silently. */
  partition(): void;
  /** Lets traffic through again, held bytes first. */
  heal(): void;
  close(): Promise<void>;
}

/**
 * Listens on a free loopback port and relays each connection to `upstream`, or, given a list, to
 * the next upstream in turn that accepts a connection (a client is cut off only when none does).
 *
 * @example
 * ```ts
 * const relay = await startPartitionRelay(nats.url);
 * const replica = await startTestService({ databaseUrl, natsUrl: relay.url });
 * relay.partition(); // the replica can no longer reach NATS, and does not know it
 * ```
 */
export async function startPartitionRelay(upstream: string | readonly string[]): Promise<PartitionRelay> {
  const targets = (typeof upstream === "string" ? [upstream] : upstream).map((url) => new URL(url));
  const target = targets[0];
  if (target === undefined) throw new Error("startPartitionRelay needs at least one upstream");
  let turn = 0;
  const sockets = new Set<Socket>();
  /** Client sockets accepted while partitioned, waiting to be connected upstream. */
  const waiting: Socket[] = [];
  let partitioned = false;

  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };

  /** Flushes what a connection held during a partition and lets it read again; one per direction. */
  const releases = new Set<() => void>();

  /** Copies `from` to `to`, holding chunks (and reading no more) while partitioned. */
  function forward(from: Socket, to: Socket): void {
    const held: Buffer[] = [];
    const release = () => {
      for (const chunk of held.splice(0)) if (!to.destroyed) to.write(chunk);
      from.resume();
    };
    releases.add(release);
    from.once("close", () => releases.delete(release));
    from.on("data", (chunk: Buffer) => {
      if (partitioned) {
        held.push(chunk);
        from.pause();
        return;
      }
      to.write(chunk);
    });
  }

  function relay(client: Socket, tried = 0): void {
    const next = targets[turn++ % targets.length];
    if (next === undefined) return;
    const remote = connectTcp(Number(next.port), next.hostname);
    track(remote);
    const refused = () => {
      // Not connected yet: that upstream is down, so the client goes to the next one.
      if (tried + 1 < targets.length && !client.destroyed) relay(client, tried + 1);
      else client.destroy();
    };
    remote.once("error", refused);
    client.once("close", () => remote.destroy());
    client.on("error", () => remote.destroy());
    remote.once("connect", () => {
      remote.off("error", refused);
      forward(client, remote);
      forward(remote, client);
      remote.once("close", () => client.destroy());
      remote.on("error", () => client.destroy());
      if (partitioned) remote.pause();
    });
  }

  const server = createServer((client) => {
    track(client);
    if (partitioned) {
      client.pause();
      waiting.push(client);
      return;
    }
    relay(client);
  });
  const listening = await listenRelay(server, sockets, target);
  return {
    url: listening.url,
    partition() {
      partitioned = true;
      // Pausing stops reading: what the other side sends stays in its buffers, as in a stalled path.
      for (const socket of sockets) socket.pause();
    },
    heal() {
      partitioned = false;
      for (const release of releases) release();
      for (const client of waiting.splice(0)) {
        if (client.destroyed) continue;
        relay(client);
        client.resume();
      }
    },
    close: listening.close,
  };
}
