// A JetStream cluster of `nats-server` processes on loopback, for tests and the chaos bench that kill
// nodes: routes between every pair, a store directory per node, a monitoring port per node to ask
// who leads.
import { findFreePort } from "./free-port.js";
import { type NatsServer, startNats } from "./nats.js";

/** One node of a {@link NatsCluster}. */
export interface NatsClusterNode {
  /** The node's `server_name` (`n1`, `n2`, …), as JetStream names leaders. */
  readonly name: string;
  readonly server: NatsServer;
  /** `http://127.0.0.1:<monitoring port>` (`/varz`, `/jsz`, …). */
  readonly monitorUrl: string;
}

/** A running cluster. */
export interface NatsCluster {
  readonly nodes: readonly NatsClusterNode[];
  /** Client URLs of every node. */
  readonly urls: readonly string[];
  /**
   * The name of the node that leads `stream` (its Raft group), or of the JetStream meta leader
   * when `stream` is left out; undefined while there is none (an election is under way).
   */
  leader(stream?: string): Promise<string | undefined>;
  /** The nodes that lead the consumers of `stream`, by consumer name. */
  consumerLeaders(stream: string): Promise<Map<string, string>>;
  /** Resolves once every running node agrees on a meta leader and, when given, a leader of `stream`. */
  waitForLeader(stream?: string, timeoutMs?: number): Promise<string>;
  /** Stops every node and deletes the stores. */
  dispose(): Promise<void>;
}

/** Options of {@link startNatsCluster}. */
export interface StartNatsClusterOptions {
  /** Number of nodes (default 3: the smallest cluster that survives losing one). */
  readonly size?: number;
  /** Extra `nats-server` arguments for every node. */
  readonly args?: readonly string[];
}

/**
 * Starts a JetStream cluster on 127.0.0.1. Nodes do not advertise each other's client URLs
 * (`--no_advertise`), so a client reaches only the URLs it was given: a test that puts a relay
 * in front of the cluster keeps every byte going through the relay.
 *
 * @example
 * ```ts
 * const cluster = await startNatsCluster();
 * const leader = await cluster.waitForLeader("LATCHKEY_KEY_EVENTS");
 * await cluster.nodes.find((node) => node.name === leader)?.server.kill();
 * await cluster.dispose();
 * ```
 */
export async function startNatsCluster(options: StartNatsClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const clientPorts: number[] = [];
  const routePorts: number[] = [];
  const monitorPorts: number[] = [];
  for (let i = 0; i < size; i++) {
    clientPorts.push(await findFreePort());
    routePorts.push(await findFreePort());
    monitorPorts.push(await findFreePort());
  }
  const routes = routePorts.map((port) => `nats-route://127.0.0.1:${port}`).join(",");
  const nodes: NatsClusterNode[] = [];
  try {
    await Promise.all(
      clientPorts.map(async (port, i) => {
        const name = `n${i + 1}`;
        const server = await startNats({
          port,
          args: [
            "-n",
            name,
            "--cluster_name",
            "latchkey",
            "--cluster",
            `nats://127.0.0.1:${routePorts[i]}`,
            "--routes",
            routes,
            "--no_advertise",
            "-m",
            String(monitorPorts[i]),
            ...(options.args ?? []),
          ],
        });
        nodes[i] = { name, server, monitorUrl: `http://127.0.0.1:${monitorPorts[i]}` };
      }),
    );
  } catch (error) {
    await Promise.all(nodes.map((node) => node?.server.dispose()));
    throw error;
  }

  async function leader(stream?: string): Promise<string | undefined> {
    const seen = new Set<string>();
    for (const node of nodes) {
      if (!node.server.running) continue;
      const found = await askLeader(node.monitorUrl, stream).catch(() => undefined);
      if (found !== undefined) seen.add(found);
    }
    // Nodes that disagree are mid-election, and a dead leader is one the others have not yet noticed.
    const [found] = seen;
    const alive = nodes.some((node) => node.name === found && node.server.running);
    return seen.size === 1 && alive ? found : undefined;
  }

  return {
    nodes,
    urls: nodes.map((node) => node.server.url),
    leader,
    async consumerLeaders(stream) {
      // Each node's /jsz lists the consumers it hosts.
      const leaders = new Map<string, string>();
      for (const node of nodes) {
        if (!node.server.running) continue;
        const response = await fetch(`${node.monitorUrl}/jsz?accounts=true&streams=true&consumers=true`);
        const jsz = (await response.json()) as Jsz;
        for (const account of jsz.account_details ?? []) {
          for (const detail of account.stream_detail ?? []) {
            if (detail.name !== stream) continue;
            for (const consumer of detail.consumer_detail ?? []) {
              if (consumer.cluster?.leader) leaders.set(consumer.name, consumer.cluster.leader);
            }
          }
        }
      }
      return leaders;
    },
    async waitForLeader(stream, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const meta = await leader();
        const found = stream === undefined ? meta : meta && (await leader(stream));
        if (found !== undefined) return found;
        if (Date.now() > deadline) {
          throw new Error(`no JetStream ${stream ?? "meta"} leader within ${timeoutMs} ms`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async dispose() {
      await Promise.all(nodes.map((node) => node.server.dispose()));
    },
  };
}

interface Jsz {
  meta_cluster?: { leader?: string };
  account_details?: Array<{
    stream_detail?: Array<{
      name: string;
      cluster?: { leader?: string };
      consumer_detail?: Array<{ name: string; cluster?: { leader?: string } }>;
    }>;
  }>;
}

/** What one node's `/jsz` says leads the meta group or `stream`. */
async function askLeader(monitorUrl: string, stream: string | undefined): Promise<string | undefined> {
  const query = stream === undefined ? "" : "?accounts=true&streams=true";
  const response = await fetch(`${monitorUrl}/jsz${query}`, { signal: AbortSignal.timeout(2_000) });
  if (!response.ok) return undefined;
  const jsz = (await response.json()) as Jsz;
  if (stream === undefined) return jsz.meta_cluster?.leader || undefined;
  for (const account of jsz.account_details ?? []) {
    for (const detail of account.stream_detail ?? []) {
      if (detail.name === stream) return detail.cluster?.leader || undefined;
    }
  }
  return undefined;
}
