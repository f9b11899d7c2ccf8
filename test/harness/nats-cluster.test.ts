import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsCluster, startNatsCluster } from "./nats-cluster.js";

const STREAM = "CLUSTER_HARNESS";

describe("startNatsCluster", () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;

  beforeAll(async () => {
    cluster = await startNatsCluster();
    await cluster.waitForLeader();
    nc = await connect({ servers: [...cluster.urls], maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  }, 60_000);

  afterAll(async () => {
    await nc?.close();
    await cluster?.dispose();
  });

  it("keeps a three-replica stream writable and whole when its leader is killed, and the node rejoins", async () => {
    const jsm = await jetstreamManager(nc, { timeout: 10_000 });
    await jsm.streams.add({ name: STREAM, subjects: [`${STREAM}.>`], num_replicas: 3 });
    const js = jetstream(nc, { timeout: 10_000 });
    await js.publish(`${STREAM}.a`, "before");

    const leader = await cluster.waitForLeader(STREAM);
    expect(cluster.nodes.map((node) => node.name)).toContain(leader);
    const victim = cluster.nodes.find((node) => node.name === leader);
    await victim?.server.kill();
    expect(victim?.server.running).toBe(false);

    const next = await cluster.waitForLeader(STREAM);
    expect(next).not.toBe(leader);
    await publishEventually(() => js.publish(`${STREAM}.a`, "after"));

    await victim?.server.restart();
    await cluster.waitForLeader(STREAM);
    // Right after the restart the answer may come while the cluster still settles (a leader change,
    // the rejoined node catching up): whole means both messages and two followers, within a bound.
    const deadline = Date.now() + 20_000;
    let info = await jsm.streams.info(STREAM);
    while ((info.state.messages !== 2 || info.cluster?.replicas?.length !== 2) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      info = await jsm.streams.info(STREAM).catch(() => info);
    }
    expect(info.state.messages).toBe(2);
    expect(info.cluster?.replicas?.length).toBe(2);
  }, 90_000);
});

/** Publishes once the cluster takes writes again (a new leader may still be settling). */
async function publishEventually(publish: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await publish();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
