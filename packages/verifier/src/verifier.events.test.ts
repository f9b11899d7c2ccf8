import { createMemoryKeyEventBus, type KeyEventBus, type VerifierMessage } from "@latchkey/events";
import { KeyEventType } from "@latchkey/proto";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { answerOutboxCurrency } from "../test-support/drained-outbox.js";
import {
  createControlledBus,
  createTokenServiceStub,
  keyEvent,
  type TokenServiceStub,
} from "../test-support/token-service-stub.js";
import { createVerifier, type Verifier } from "./verifier.js";
import type { VerifierOptions } from "./verifier-options.js";
import type { KeyInvalidation } from "./verify-outcome.js";

let stub: TokenServiceStub;
let bus: KeyEventBus;
const verifiers: Verifier[] = [];

async function verifier(options: Partial<VerifierOptions> = {}): Promise<Verifier> {
  const created = createVerifier({
    transport: stub.transport,
    events: bus,
    healthProbeIntervalMs: 0,
    ...options,
  });
  verifiers.push(created);
  await created.ready();
  return created;
}

/** Resolves with the next invalidation a verifier reports. */
function nextInvalidation(v: Verifier): Promise<KeyInvalidation> {
  return new Promise((resolve) => {
    const off = v.onInvalidate((invalidation) => {
      off();
      resolve(invalidation);
    });
  });
}

beforeEach(() => {
  stub = createTokenServiceStub();
  bus = createMemoryKeyEventBus();
  answerOutboxCurrency(bus);
});

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(verifiers.splice(0).map((v) => v.close()));
  await bus.close();
});

describe("key events", () => {
  it("evicts on a revocation, so the next verify sees REVOKED", async () => {
    const v = await verifier();
    const { token, key } = stub.issue();
    expect(await v.verify(token)).toMatchObject({ code: "VALID", cached: false });
    expect(await v.verify(token)).toMatchObject({ code: "VALID", cached: true });
    stub.revoke(token);
    const invalidated = nextInvalidation(v);
    await bus.publish(keyEvent(KeyEventType.REVOKED, key, token), "1");
    expect(await invalidated).toMatchObject({ keyId: key.id, teamId: "team_1", type: KeyEventType.REVOKED });
    expect(v.verifyCached(token)).toBeUndefined();
    expect(await v.verify(token)).toMatchObject({ code: "REVOKED", cached: false });
    expect(stub.calls).toBe(2);
    expect(v.status().appliedSequence).toBe(1);
  });

  it("evicts by key id when the event carries no token hash", async () => {
    const v = await verifier();
    const { token, key } = stub.issue({ scopes: ["read"] });
    await v.verify(token);
    const invalidated = nextInvalidation(v);
    await bus.publish(keyEvent(KeyEventType.SCOPES_CHANGED, key), "1");
    await invalidated;
    expect(v.verifyCached(token)).toBeUndefined();
    expect(await v.metrics.metrics()).toContain('latchkey_verifier_cache_evictions_total{reason="event"} 1');
  });

  it("does not cache an answer that was in flight when an event for its key arrived", async () => {
    const v = await verifier();
    const { token, key } = stub.issue();
    stub.hold();
    const inFlight = v.verify(token);
    while (stub.calls === 0) await new Promise((resolve) => setImmediate(resolve));
    const invalidated = nextInvalidation(v);
    await bus.publish(keyEvent(KeyEventType.REVOKED, key, token), "1");
    await invalidated;
    stub.revoke(token);
    stub.release();
    // The answer was read before the revocation: it is returned, but not kept.
    expect(await inFlight).toMatchObject({ code: "VALID" });
    expect(await v.verify(token)).toMatchObject({ code: "REVOKED" });
    expect(stub.calls).toBe(2);
  });

  it("does not let a caller that arrives after an event share a lookup started before it", async () => {
    const v = await verifier();
    const { token, key } = stub.issue();
    stub.hold();
    const before = v.verify(token);
    while (stub.calls === 0) await new Promise((resolve) => setImmediate(resolve));
    const invalidated = nextInvalidation(v);
    await bus.publish(keyEvent(KeyEventType.REVOKED, key, token), "1");
    await invalidated;
    stub.revoke(token);
    const after = v.verify(token);
    stub.release();
    expect(await before).toMatchObject({ code: "VALID" });
    expect(await after).toMatchObject({ code: "REVOKED" });
    expect(stub.calls).toBe(2);
    // The second lookup says it has applied the event, so no token-service replica that has
    // not may answer it from its own cache.
    expect(stub.requests.map((r) => r.minEventSequence)).toEqual([0n, 1n]);
  });

  it("asks for answers at least as fresh as the events it has applied", async () => {
    const other = stub.issue();
    await bus.publish(keyEvent(KeyEventType.DISABLED, other.key, other.token), "1");
    const v = await verifier(); // subscribes at sequence 1
    const { token, key } = stub.issue();
    await v.verify(token);
    const invalidated = nextInvalidation(v);
    await bus.publish(keyEvent(KeyEventType.REVOKED, key, token), "2");
    await invalidated;
    stub.revoke(token);
    expect(await v.verify(token)).toMatchObject({ code: "REVOKED", cached: false });
    expect(stub.requests.map((r) => r.minEventSequence)).toEqual([1n, 2n]);
  });

  it("clears the whole cache on a gap", async () => {
    const controlled = createControlledBus(bus);
    const v = await verifier({ events: controlled });
    const a = stub.issue();
    const b = stub.issue();
    await v.verify(a.token);
    await v.verify(b.token);
    expect(v.status().cacheEntries).toBe(2);
    controlled.gap();
    expect(v.status().cacheEntries).toBe(0);
    expect(await v.verify(a.token)).toMatchObject({ cached: false });
    expect(await v.metrics.metrics()).toContain('latchkey_verifier_cache_evictions_total{reason="gap"} 2');
  });

  it("tells every onInvalidate listener until it unsubscribes", async () => {
    const v = await verifier();
    const { key, token } = stub.issue();
    const seen: KeyEventType[] = [];
    const off = v.onInvalidate((invalidation) => seen.push(invalidation.type));
    const last = nextInvalidation(v);
    await bus.publish(keyEvent(KeyEventType.DISABLED, key, token), "1");
    await last;
    off();
    const after = nextInvalidation(v);
    await bus.publish(keyEvent(KeyEventType.ENABLED, key, token), "2");
    await after;
    expect(seen).toEqual([KeyEventType.DISABLED]);
  });

  it("reports a key that expires while cached, without any request", async () => {
    vi.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z") });
    const v = await verifier({ maxStaleMs: 60_000 });
    const { token, key } = stub.issue({ expiresAt: Date.now() + 30_000 });
    await v.verify(token);
    const invalidated = nextInvalidation(v);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(await invalidated).toMatchObject({ keyId: key.id, type: KeyEventType.EXPIRED });
    expect(v.status().cacheEntries).toBe(0);
  });
});

describe("acks and heartbeats", () => {
  it("acks applied events in one batch and heartbeats the applied sequence", async () => {
    vi.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z") });
    const messages: VerifierMessage[] = [];
    bus.onVerifierMessage((message) => messages.push(message));
    const v = await verifier({ ackBatchMs: 2, heartbeatIntervalMs: 1_000, label: "sidecar-a" });
    const { key, token } = stub.issue();
    const events = [
      keyEvent(KeyEventType.SCOPES_CHANGED, key, token),
      keyEvent(KeyEventType.METADATA_CHANGED, key, token),
      keyEvent(KeyEventType.REVOKED, key, token),
    ];
    for (const [i, event] of events.entries()) await bus.publish(event, String(i));
    await vi.advanceTimersByTimeAsync(2);
    const acks = messages.flatMap((m) => (m.kind === "ack" ? [m.ack] : []));
    expect(acks).toHaveLength(1);
    expect(acks[0]).toMatchObject({
      verifierId: v.id,
      appliedSequence: 3n,
      eventIds: events.map((e) => e.id),
    });
    expect(v.id).toMatch(/^v_[0-9A-Za-z]{16}$/);

    await vi.advanceTimersByTimeAsync(1_000);
    const heartbeats = messages.flatMap((m) => (m.kind === "heartbeat" ? [m.heartbeat] : []));
    // One on subscribing, one per interval since.
    expect(heartbeats).toHaveLength(2);
    expect(heartbeats[1]).toMatchObject({ verifierId: v.id, appliedSequence: 3n, label: "sidecar-a" });
    expect(heartbeats[1]?.interval?.seconds).toBe(1n);
    const text = await v.metrics.metrics();
    expect(text).toContain("latchkey_verifier_applied_sequence 3");
    expect(text).toContain("latchkey_verifier_lag_events 0");
    expect(text).toContain("latchkey_verifier_nats_connected 1");
    // One publish → applied observation per event; a proof of currency from this heartbeat's answer.
    expect(text).toMatch(/^latchkey_verifier_revocation_lag_seconds_count 3$/m);
    const age = Number(/^latchkey_verifier_currency_age_seconds (\S+)$/m.exec(text)?.[1]);
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(0.1);
  });
});

describe("bounded staleness", () => {
  it("keeps using cached answers while the feed proves itself current", async () => {
    vi.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z") });
    const v = await verifier({ maxStaleMs: 2_000, heartbeatIntervalMs: 1_000 });
    const { token } = stub.issue();
    await v.verify(token);
    for (let second = 0; second < 10; second++) {
      await vi.advanceTimersByTimeAsync(1_000);
      expect(await v.verify(token)).toMatchObject({ cached: true });
    }
    expect(stub.calls).toBe(1);
  });

  it("re-verifies answers older than maxStale once the feed has been cut off longer than maxStale", async () => {
    vi.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z") });
    const controlled = createControlledBus(bus);
    const v = await verifier({ events: controlled, maxStaleMs: 2_000, heartbeatIntervalMs: 1_000 });
    const { token } = stub.issue();
    await v.verify(token);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(await v.verify(token)).toMatchObject({ cached: true });

    controlled.cut();
    expect(v.status().eventsConnected).toBe(false);
    // Revoked while this verifier hears nothing.
    stub.revoke(token);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(await v.verify(token)).toMatchObject({ code: "VALID", cached: true });
    await vi.advanceTimersByTimeAsync(600);
    // The last proof of currency is now more than maxStale old: ask again.
    expect(v.verifyCached(token)).toBeUndefined();
    expect(await v.verify(token)).toMatchObject({ code: "REVOKED", cached: false });
    expect(stub.calls).toBe(2);
    expect(await v.metrics.metrics()).toContain("latchkey_verifier_stale_reverifications_total 1");
    expect(await v.metrics.metrics()).toContain("latchkey_verifier_nats_connected 0");

    // A fresh answer is usable for half of maxStale even while cut off: the other half is the
    // staleness the token-service was allowed to answer from (max_staleness_ms).
    const other = stub.issue();
    await v.verify(other.token);
    expect(stub.requests.at(-1)?.maxStalenessMs).toBe(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await v.verify(other.token)).toMatchObject({ cached: true });
    await vi.advanceTimersByTimeAsync(1);
    expect(await v.verify(other.token)).toMatchObject({ cached: false });

    controlled.restore();
    await vi.advanceTimersByTimeAsync(0);
    expect(v.status().eventsConnected).toBe(true);
    await v.verify(other.token);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(await v.verify(other.token)).toMatchObject({ cached: true });
  });
});
