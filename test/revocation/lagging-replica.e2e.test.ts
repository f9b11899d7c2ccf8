// Two real token-service replicas on one PostgreSQL and one NATS, one of them
// reading NATS through a relay that delivers everything 400 ms late. A
// verifier that follows key events directly applies a revocation (and Revoke
// reports every verifier confirmed), then misses its cache and asks the
// lagging replica, whose row cache still holds the key as valid. The verifier
// says which events it has applied (VerifyRequest.min_event_sequence), so the
// replica must answer from PostgreSQL, not from its stale cache, on both of
// its listeners; and the verifier must not cache VALID.
import { setTimeout as sleep } from "node:timers/promises";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createNatsKeyEventBus, type NatsKeyEventBus } from "@latchkey/events";
import { VerifyResult } from "@latchkey/proto";
import { createVerifier, type Verifier } from "@latchkey/verifier";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabaseUrl, type NatsServer, startNats } from "../harness/index.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { type DelayingRelay, startDelayingRelay } from "./delaying-relay.js";

/** How late the lagging replica receives what NATS sends it. */
const LAG_MS = 400;

let nats: NatsServer;
let relay: DelayingRelay;
let prompt: TestService;
let lagging: TestService;
let teamId: string;
const buses: NatsKeyEventBus[] = [];
const verifiers: Record<string, Verifier> = {};

async function eventually(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(10);
  }
}

function followingVerifier(name: string, via: { tokenService: string } | { transport: Transport }): Verifier {
  // The verifier reads NATS directly, on time; only the replica lags.
  const bus = createNatsKeyEventBus({ servers: nats.url, name: `lagging-replica-${name}` });
  buses.push(bus);
  // A long maxStale, so the request's max_staleness_ms (half of it) leaves the lagging replica free
  // to answer from its row cache: min_event_sequence alone must keep it from doing so.
  return createVerifier({
    ...via,
    events: bus,
    prefix: "lk",
    heartbeatIntervalMs: 100,
    maxStaleMs: 120_000,
    label: name,
  });
}

beforeAll(async () => {
  nats = await startNats();
  const databaseUrl = await freshDatabaseUrl("lagging_replica");
  prompt = await startTestService({ databaseUrl, natsUrl: nats.url });
  relay = await startDelayingRelay(nats.url, LAG_MS);
  // Its row cache answers while its proof of currency is under a minute old (the relay makes it
  // ~1 s old): only min_event_sequence stands between a verifier and its stale rows.
  lagging = await startTestService({
    databaseUrl,
    natsUrl: relay.url,
    settings: { verifyCacheMaxStaleMs: 60_000 },
  });
  teamId = (await prompt.teams().createTeam({ name: "lagging-replica" })).team?.id ?? "";
  verifiers["grpc-js on the native port"] = followingVerifier("grpc", { tokenService: lagging.grpcUrl });
  verifiers["Connect on the Connect port"] = followingVerifier("connect", {
    transport: createConnectTransport({ baseUrl: lagging.connectUrl, httpVersion: "2" }),
  });
  await Promise.all(Object.values(verifiers).map((v) => v.ready()));
  await eventually(
    () =>
      prompt.handle.eventFeed().connected &&
      lagging.handle.eventFeed().connected &&
      Object.values(verifiers).every((v) => v.status().eventsConnected),
    20_000,
    "every event feed connected",
  );
  // Heartbeats make the verifiers live, so Revoke waits for their confirmations.
  await sleep(300);
});

afterAll(async () => {
  await Promise.all(Object.values(verifiers).map((v) => v.close()));
  await Promise.all(buses.map((b) => b.close()));
  await Promise.all([prompt?.close(), lagging?.close()]);
  await relay?.close();
  await nats?.dispose();
});

describe("a verifier asking a replica that has not applied a revocation yet", () => {
  it.each(Object.keys({ "grpc-js on the native port": 0, "Connect on the Connect port": 0 }))(
    "gets REVOKED, not the replica's cached VALID, and does not cache VALID (%s)",
    async (name) => {
      const verifier = verifiers[name] as Verifier;
      const { key, token } = await prompt.tokens().issue({ teamId, name, scopes: ["read"] });
      // Both caches hold the key as valid: the verifier's and the lagging replica's row cache.
      expect((await verifier.verify(token)).code).toBe("VALID");
      expect(verifier.verifyCached(token)?.code).toBe("VALID");
      const before = lagging.handle.eventFeed().appliedSequence;

      const { propagation } = await prompt.tokens().revoke({
        keyId: key?.id ?? "",
        waitTimeout: { seconds: 5n },
      });
      expect(propagation?.complete).toBe(true);
      // The verifier applied the revocation; the lagging replica has not.
      expect(verifier.verifyCached(token)).toBeUndefined();
      const applied = verifier.status().appliedSequence;
      expect(applied).toBeGreaterThan(before);
      expect(lagging.handle.eventFeed().appliedSequence).toBe(before);
      // A caller that has seen no event is still answered from the replica's cache: the lag is real.
      expect((await lagging.tokens(null).verify({ token })).result).toBe(VerifyResult.VALID);

      const outcome = await verifier.verify(token);
      expect(lagging.handle.eventFeed().appliedSequence).toBe(before); // still lagging when it answered
      expect(outcome).toMatchObject({ ok: false, code: "REVOKED" });
      expect(verifier.verifyCached(token)?.code).not.toBe("VALID");

      // Once the replica catches up, nothing VALID was left behind anywhere.
      await eventually(
        () => lagging.handle.eventFeed().appliedSequence >= applied,
        5_000,
        "lagging replica applied the revocation",
      );
      expect(verifier.verifyCached(token)?.code).not.toBe("VALID");
      expect((await verifier.verify(token)).code).toBe("REVOKED");
      expect((await lagging.tokens(null).verify({ token })).result).toBe(VerifyResult.REVOKED);
    },
  );
});
