import { create } from "@bufbuild/protobuf";
import { type KeyEvent, KeyEventSchema, KeyEventType } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsCluster, startNatsCluster } from "../../../test/harness/nats-cluster.js";
import { waitUntil } from "../../../test/harness/wait.js";
import type { KeyEventSubscription } from "./key-event-bus.js";
import { createNatsKeyEventBus, type NatsKeyEventBus } from "./nats-key-event-bus.js";
import { KEY_EVENTS_STREAM } from "./subjects.js";

// Found by `npm run chaos`: a subscriber whose ordered consumer lived on a NATS node that died,
// while its own connection (to another node) stayed up, heard nothing for ~30 s (the library's
// default idle heartbeat of 15 s, missed twice), so its proof of currency stopped for that long.

let cluster: NatsCluster;
const buses: NatsKeyEventBus[] = [];

beforeAll(async () => {
  cluster = await startNatsCluster();
  await cluster.waitForLeader();
}, 60_000);

afterAll(async () => {
  await Promise.all(buses.map((bus) => bus.close()));
  await cluster?.dispose();
});

function bus(servers: string | readonly string[]): NatsKeyEventBus {
  const created = createNatsKeyEventBus({
    servers,
    reconnectTimeWaitMs: 50,
    requestTimeoutMs: 2_000,
    replicas: 3,
  });
  buses.push(created);
  return created;
}

let eventId = 0n;
function revoked(): KeyEvent {
  eventId += 1n;
  return create(KeyEventSchema, {
    id: eventId,
    type: KeyEventType.REVOKED,
    keyId: `key_${eventId}`,
    teamId: "t",
  });
}

/** Publishes, trying again while the stream settles after a node died. */
async function publish(publisher: NatsKeyEventBus, event: KeyEvent): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await publisher.publish(event, String(event.id));
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe("a key event subscription on a NATS cluster", () => {
  it("resumes within seconds when the node holding its consumer dies and its own connection stays up", async () => {
    const publisher = bus(cluster.urls);
    await publisher.ensureStream();
    await cluster.waitForLeader(KEY_EVENTS_STREAM);

    // Connected to n1 only; the consumer must live elsewhere, so a fresh subscription is made
    // until the cluster places it on another node.
    const first = cluster.nodes[0];
    if (first === undefined) throw new Error("no node");
    const received: bigint[] = [];
    let subscription: KeyEventSubscription | undefined;
    let consumerNode: string | undefined;
    for (let attempt = 0; attempt < 12 && consumerNode === undefined; attempt++) {
      const subscriber = bus(first.server.url);
      const before = await cluster.consumerLeaders(KEY_EVENTS_STREAM);
      subscription = await subscriber.subscribe({ onEvent: ({ event }) => void received.push(event.id) });
      const after = await cluster.consumerLeaders(KEY_EVENTS_STREAM);
      const placed = [...after].find(([name]) => !before.has(name))?.[1];
      if (placed !== undefined && placed !== first.name) consumerNode = placed;
      else await subscription.close();
    }
    expect(consumerNode).toBeDefined();

    const one = revoked();
    await publish(publisher, one);
    await waitUntil(() => received.includes(one.id), { what: "the first event", timeoutMs: 10_000 });

    const victim = cluster.nodes.find((node) => node.name === consumerNode);
    await victim?.server.kill();
    try {
      const two = revoked();
      await publish(publisher, two);
      const published = Date.now();
      await waitUntil(() => received.includes(two.id), {
        what: "the event after the node died",
        timeoutMs: 20_000,
      });
      expect(Date.now() - published).toBeLessThan(8_000);
    } finally {
      await victim?.server.restart();
    }
  }, 90_000);
});
