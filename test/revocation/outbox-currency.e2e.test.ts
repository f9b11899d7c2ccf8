// The revocation bound when the token-service is cut off from NATS, end to
// end: two token-service replicas on one real PostgreSQL, each reaching a real
// NATS JetStream through a relay the test can silently partition, and
// verifiers (the SDK) that read NATS directly and call replica B. A revocation
// made on a replica that cannot publish waits in the outbox; the verifiers must
// still refuse the key within maxStaleMs plus one Verify, because their proof
// of currency comes from the replicas' outbox currency answers, which stop.
// And when only one replica is cut off, the other keeps them current.
import { setTimeout as sleep } from "node:timers/promises";
import { createNatsKeyEventBus, type NatsKeyEventBus } from "@latchkey/events";
import { VerifyResult } from "@latchkey/proto";
import { createVerifier, type Verifier } from "@latchkey/verifier";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabaseUrl, type NatsServer, startNats } from "../harness/index.js";
import { waitUntil } from "../harness/wait.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { type PartitionRelay, startPartitionRelay } from "./partition-relay.js";

const MAX_STALE_MS = 1_000;
/** One Verify on this busy 2-core machine, generously: the bound is maxStale plus one Verify. */
const ONE_VERIFY_MS = 1_000;

let nats: NatsServer;
let relayA: PartitionRelay;
let relayB: PartitionRelay;
let a: TestService;
let b: TestService;
let teamId: string;
const verifiers: Verifier[] = [];
const buses: NatsKeyEventBus[] = [];

/** Waits until every verifier has a proof of currency younger than `ms`. */
async function allCurrent(ms = MAX_STALE_MS / 2, timeoutMs = 10_000): Promise<void> {
  await waitUntil(() => verifiers.every((v) => Date.now() - v.status().coveredAt < ms), {
    what: `every verifier's proof of currency younger than ${ms} ms`,
    timeoutMs,
  });
}

async function cachedEverywhere(token: string): Promise<void> {
  for (const verifier of verifiers) expect((await verifier.verify(token)).code).toBe("VALID");
  // Replica B's row cache holds it too (a caller with no requirements).
  expect((await b.tokens(null).verify({ token })).result).toBe(VerifyResult.VALID);
}

/** Polls each verifier until it stops answering VALID; returns how long each took from `since`. */
async function refusalTimes(token: string, since: number): Promise<number[]> {
  return Promise.all(
    verifiers.map(async (verifier) => {
      await waitUntil(async () => (await verifier.verify(token)).code !== "VALID", {
        what: "the revoked key refused",
        timeoutMs: 30_000,
        intervalMs: 20,
      });
      const elapsed = performance.now() - since;
      // Refused means REVOKED: replica B read PostgreSQL rather than its row cache.
      expect((await verifier.verify(token)).code).toBe("REVOKED");
      expect(verifier.verifyCached(token)?.code).not.toBe("VALID");
      return elapsed;
    }),
  );
}

beforeAll(async () => {
  nats = await startNats();
  const databaseUrl = await freshDatabaseUrl("outbox_currency");
  relayA = await startPartitionRelay(nats.url);
  relayB = await startPartitionRelay(nats.url);
  a = await startTestService({ databaseUrl, natsUrl: relayA.url });
  b = await startTestService({ databaseUrl, natsUrl: relayB.url });
  teamId = (await a.teams().createTeam({ name: "outbox-currency" })).team?.id ?? "";
  for (let i = 0; i < 2; i++) {
    const bus = createNatsKeyEventBus({ servers: nats.url, name: `currency-verifier-${i}` });
    buses.push(bus);
    verifiers.push(
      createVerifier({
        tokenService: b.grpcUrl,
        events: bus,
        prefix: "lk",
        maxStaleMs: MAX_STALE_MS,
        heartbeatIntervalMs: 100,
        label: `currency-${i}`,
      }),
    );
  }
  await Promise.all(verifiers.map((v) => v.ready()));
  await waitUntil(() => a.handle.eventFeed().connected && b.handle.eventFeed().connected, {
    what: "both replicas follow the stream",
    timeoutMs: 20_000,
  });
  await allCurrent();
}, 60_000);

afterAll(async () => {
  relayA?.heal();
  relayB?.heal();
  await Promise.all(verifiers.map((v) => v.close()));
  await Promise.all(buses.map((bus) => bus.close()));
  await Promise.all([a?.close(), b?.close()]);
  await Promise.all([relayA?.close(), relayB?.close()]);
  await nats?.dispose();
});

describe("outbox currency", () => {
  it("lets a verifier serve a key cached longer than maxStaleMs from its cache while all is well", async () => {
    const { token } = await a.tokens().issue({ teamId, name: "steady" });
    await cachedEverywhere(token);
    await sleep(2 * MAX_STALE_MS);
    await allCurrent();
    for (const verifier of verifiers) {
      expect(verifier.verifyCached(token)).toMatchObject({ code: "VALID", cached: true });
      const text = await verifier.metrics.metrics();
      const age = Number(/^latchkey_verifier_currency_age_seconds (\S+)$/m.exec(text)?.[1]);
      expect(age).toBeLessThan(MAX_STALE_MS / 1000);
    }
  });

  it("refuses a key revoked while every replica is cut off from NATS within maxStaleMs plus one Verify", async () => {
    const { key, token } = await a.tokens().issue({ teamId, name: "cut-off" });
    await cachedEverywhere(token);
    await allCurrent();
    const sequenceBefore = verifiers[0]?.status().appliedSequence ?? 0;
    relayA.partition();
    relayB.partition();
    try {
      const revokedAt = performance.now();
      await a.tokens().revoke({ keyId: key?.id ?? "" });
      const elapsed = await refusalTimes(token, revokedAt);
      for (const ms of elapsed) expect(ms).toBeLessThan(MAX_STALE_MS + ONE_VERIFY_MS);
      // The event itself is still in the outbox: no verifier has applied anything new.
      for (const verifier of verifiers) expect(verifier.status().appliedSequence).toBe(sequenceBefore);
      const row = await a.sql.query("select published_at from key_event_outbox where key_id = $1", [key?.id]);
      expect(row.rows[0]?.published_at).toBeNull();
    } finally {
      relayA.heal();
      relayB.heal();
    }
    // Healed: the outbox publishes the revocation, every verifier applies it, and proofs resume.
    await waitUntil(() => verifiers.every((v) => v.status().appliedSequence > sequenceBefore), {
      what: "the revocation published after the partition",
      timeoutMs: 60_000,
    });
    await allCurrent(MAX_STALE_MS / 2, 60_000);
  });

  it("keeps verifiers current while one replica is cut off, and refuses a key revoked on that one", async () => {
    const { token: steady } = await a.tokens().issue({ teamId, name: "one-cut-off-steady" });
    const { key, token } = await a.tokens().issue({ teamId, name: "one-cut-off" });
    await cachedEverywhere(steady);
    await cachedEverywhere(token);
    relayA.partition();
    try {
      // Replica B answers the verifiers' currency requests alone: entries older than maxStale
      // are still served from the cache.
      await sleep(3 * MAX_STALE_MS);
      await allCurrent();
      for (const verifier of verifiers) expect(verifier.verifyCached(steady)?.code).toBe("VALID");

      // Revoked on A, which cannot publish: it holds the row until its publish times out, and the
      // verifiers' proofs stop meanwhile, so they re-verify with B, which reads PostgreSQL.
      const sequenceBefore = verifiers[0]?.status().appliedSequence ?? 0;
      const revokedAt = performance.now();
      await a.tokens().revoke({ keyId: key?.id ?? "" });
      const elapsed = await refusalTimes(token, revokedAt);
      for (const ms of elapsed) expect(ms).toBeLessThan(MAX_STALE_MS + ONE_VERIFY_MS);
      // B publishes the row once A lets go of it; the verifiers apply it and are current again.
      await waitUntil(() => verifiers.every((v) => v.status().appliedSequence > sequenceBefore), {
        what: "replica B publishing the revocation made on A",
        timeoutMs: 60_000,
      });
      await allCurrent(MAX_STALE_MS / 2, 30_000);
    } finally {
      relayA.heal();
    }
  });
});
