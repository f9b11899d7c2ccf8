import { createNatsKeyEventBus, type NatsKeyEventBus } from "@latchkey/events";
import { KeyEventType } from "@latchkey/proto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type NatsServer, startNats } from "../../../test/harness/nats.js";
import { waitUntil } from "../../../test/harness/wait.js";
import { answerOutboxCurrency } from "../test-support/drained-outbox.js";
import {
  createTokenServiceStub,
  keyEvent,
  type TokenServiceStub,
} from "../test-support/token-service-stub.js";
import { createVerifier, type Verifier } from "./verifier.js";
import type { VerifierOptions } from "./verifier-options.js";
import type { KeyInvalidation } from "./verify-outcome.js";

// The SDK against a real nats-server (a private one: the outage test stops it). The token-service
// is the in-memory stub; the full stack is tested under test/.

let server: NatsServer;
let stub: TokenServiceStub;
let publisher: NatsKeyEventBus;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  server = await startNats();
  publisher = createNatsKeyEventBus({ servers: server.url, reconnectTimeWaitMs: 50 });
  await publisher.ensureStream();
  // The stand-in token-service answers currency requests over NATS request/reply, as replicas do.
  answerOutboxCurrency(publisher);
  stub = createTokenServiceStub();
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

afterAll(async () => {
  await publisher?.close();
  await server?.dispose();
});

async function natsVerifier(options: Partial<VerifierOptions> = {}): Promise<Verifier> {
  const bus = createNatsKeyEventBus({
    servers: server.url,
    reconnectTimeWaitMs: 50,
    requestTimeoutMs: 1_000,
  });
  const verifier = createVerifier({
    transport: stub.transport,
    events: bus,
    healthProbeIntervalMs: 0,
    ...options,
  });
  closers.push(
    () => bus.close(),
    () => verifier.close(),
  );
  await verifier.ready();
  return verifier;
}

describe("verifier over NATS JetStream", () => {
  it("drops a revoked key from every verifier's cache within milliseconds", async () => {
    const verifiers = await Promise.all([natsVerifier(), natsVerifier(), natsVerifier()]);
    const { token, key } = stub.issue();
    for (const v of verifiers) expect(await v.verify(token)).toMatchObject({ code: "VALID" });
    const seen = verifiers.map(
      (v) =>
        new Promise<number>((resolve) => {
          const off = v.onInvalidate((invalidation: KeyInvalidation) => {
            if (invalidation.keyId !== key.id) return;
            off();
            resolve(performance.now());
          });
        }),
    );
    stub.revoke(token);
    const sentAt = performance.now();
    await publisher.publish(keyEvent(KeyEventType.REVOKED, key, token), `revoke-${key.id}`);
    const delays = (await Promise.all(seen)).map((at) => at - sentAt);
    for (const v of verifiers)
      expect(await v.verify(token)).toMatchObject({ code: "REVOKED", cached: false });
    expect(Math.max(...delays)).toBeLessThan(500);
  });

  it("rejects a key revoked during a NATS outage within maxStale, and resumes after the restart", async () => {
    const maxStaleMs = 1_000;
    const v = await natsVerifier({ maxStaleMs, heartbeatIntervalMs: 200 });
    const cached = stub.issue();
    const revokedLater = stub.issue();
    await v.verify(cached.token);
    await v.verify(revokedLater.token);
    await waitUntil(() => v.status().coveredAt > Date.now() - 300, {
      what: "the feed to prove itself",
      intervalMs: 5,
    });

    await server.stop();
    stub.revoke(cached.token);
    const revokedAt = Date.now();
    await waitUntil(async () => (await v.verify(cached.token)).code === "REVOKED", {
      what: "REVOKED",
      intervalMs: 5,
    });
    const elapsed = Date.now() - revokedAt;
    expect(elapsed).toBeLessThanOrEqual(maxStaleMs + 100);

    // Back up: the event published after the restart still reaches the verifier.
    await server.restart();
    await waitUntil(() => v.status().eventsConnected, { what: "the reconnect", intervalMs: 5 });
    await v.verify(revokedLater.token);
    stub.revoke(revokedLater.token);
    const invalidated = new Promise<void>((resolve) => v.onInvalidate(() => resolve()));
    await publisher.publish(keyEvent(KeyEventType.REVOKED, revokedLater.key, revokedLater.token), "during-1");
    await invalidated;
    expect(await v.verify(revokedLater.token)).toMatchObject({ code: "REVOKED" });
    // And the feed vouches for cached answers again.
    const fresh = stub.issue();
    await v.verify(fresh.token);
    await new Promise((resolve) => setTimeout(resolve, maxStaleMs + 300));
    expect(await v.verify(fresh.token)).toMatchObject({ code: "VALID", cached: true });
  });
});
