// A connection-level TCP load balancer, the way a Kubernetes ClusterIP Service
// (kube-proxy) balances: each new connection goes to the next backend in
// turn, and then every byte of it stays there. It never looks inside, so it
// cannot spread the calls of one long-lived HTTP/2 connection: exactly the
// behaviour that leaves a scaled-out token-service replica idle.
import { createConnection, createServer, type Socket } from "node:net";

/** A running balancer. */
export interface TcpBalancer {
  readonly port: number;
  /** Adds a backend (`127.0.0.1:port`): a new replica joining the Service's endpoints. */
  addBackend(port: number): void;
  /** Connections handed to each backend so far, by port. */
  connectionsTo(port: number): number;
  close(): Promise<void>;
}

/** Starts a balancer on 127.0.0.1 in front of `backends` (ports). */
export async function startTcpBalancer(backends: number[]): Promise<TcpBalancer> {
  const ports = [...backends];
  const counts = new Map<number, number>();
  const sockets = new Set<Socket>();
  let next = 0;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const server = createServer((client) => {
    track(client);
    const port = ports[next++ % ports.length] ?? 0;
    counts.set(port, (counts.get(port) ?? 0) + 1);
    const upstream = createConnection({ host: "127.0.0.1", port });
    track(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once("error", end).once("close", end);
    upstream.once("error", end).once("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return {
    port: address.port,
    addBackend(port) {
      ports.push(port);
    },
    connectionsTo: (port) => counts.get(port) ?? 0,
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
