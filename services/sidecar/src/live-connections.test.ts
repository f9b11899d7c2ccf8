import { KeyEventType } from "@latchkey/proto";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createKeyCheckerFixture, type KeyCheckerFixture } from "../test-support/key-checker.js";
import { type LiveConnection, LiveConnections } from "./live-connections.js";

let fixture: KeyCheckerFixture | undefined;
let registry: LiveConnections | undefined;
afterEach(async () => {
  registry?.close();
  await fixture?.close();
});

function connection(keyId: string, credential: string, closed: string[]): LiveConnection {
  return {
    kind: "sse",
    keyId,
    credential,
    requiredScopes: ["read"],
    close: (reason) => {
      closed.push(`${keyId}:${reason}`);
    },
  };
}

async function setup(maxStaleMs = 60_000) {
  fixture = await createKeyCheckerFixture({ maxStaleMs });
  const counts: number[] = [];
  registry = new LiveConnections({
    keyChecker: fixture.verifier,
    logger: pino({ level: "silent" }),
    recheckIntervalMs: 60_000,
    onCountChange: (_kind, delta) => counts.push(delta),
  });
  return { fixture, registry, counts };
}

describe("LiveConnections", () => {
  it("closes every connection a key opened when the key is revoked, and only those", async () => {
    const { fixture, registry } = await setup();
    const a = fixture.issue();
    const b = fixture.issue();
    const closed: string[] = [];
    await fixture.verifier.verify(a.token, { requiredScopes: ["read"] });
    registry.add(connection(a.key.id, a.token, closed));
    registry.add(connection(a.key.id, a.token, closed));
    registry.add(connection(b.key.id, b.token, closed));
    const revoked = new Promise<void>((resolve) => fixture.verifier.onInvalidate(() => resolve()));
    await fixture.revoke(a.key);
    await revoked;
    expect(closed).toEqual([`${a.key.id}:key revoked`, `${a.key.id}:key revoked`]);
  });

  it("re-verifies and closes connections whose key stopped verifying without an event", async () => {
    const { fixture, registry } = await setup(0);
    const a = fixture.issue();
    const closed: string[] = [];
    registry.add(connection(a.key.id, a.token, closed));
    expect(await registry.recheck()).toBe(0);
    fixture.revokeSilently(a.key);
    expect(await registry.recheck()).toBe(1);
    expect(closed).toEqual([`${a.key.id}:key revoked`]);
  });

  it("keeps connections open while the token-service is unreachable", async () => {
    const { fixture, registry } = await setup(0);
    const a = fixture.issue();
    const closed: string[] = [];
    registry.add(connection(a.key.id, a.token, closed));
    fixture.down = true;
    expect(await registry.recheck()).toBe(0);
    expect(closed).toEqual([]);
  });

  it("re-verifies a key's connections on other key events", async () => {
    const { fixture, registry } = await setup(0);
    const a = fixture.issue();
    const closed: string[] = [];
    registry.add(connection(a.key.id, a.token, closed));
    fixture.revokeSilently(a.key);
    // A scope change is not terminal by itself; the re-check finds the key revoked.
    const done = new Promise<void>((resolve) => fixture.verifier.onInvalidate(() => setImmediate(resolve)));
    const { create } = await import("@bufbuild/protobuf");
    const { KeyEventSchema } = await import("@latchkey/proto");
    await fixture.bus.publish(
      create(KeyEventSchema, {
        id: 99n,
        type: KeyEventType.SCOPES_CHANGED,
        keyId: a.key.id,
        teamId: a.key.teamId,
      }),
      "99",
    );
    await done;
    await registry.recheck(a.key.id);
    expect(closed).toContain(`${a.key.id}:key revoked`);
  });

  it("counts connections in and out, and says going away at shutdown", async () => {
    const { fixture, registry, counts } = await setup();
    const a = fixture.issue();
    const closed: string[] = [];
    const remove = registry.add(connection(a.key.id, a.token, closed));
    registry.add(connection(a.key.id, a.token, closed));
    remove();
    remove();
    expect(registry.size).toBe(1);
    expect(counts).toEqual([1, 1, -1]);
    registry.close();
    expect(closed).toEqual([`${a.key.id}:going away`]);
  });
});
