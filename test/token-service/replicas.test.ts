// Two replicas on one database sharing one key event bus: a change made on one
// drops the other's cached row as soon as the event arrives. A third one
// receives events late (held back while the test looks), and a verifier on the
// same in-process bus (as under `npm start`) that has applied an event is not
// answered from its stale cache.
import { createMemoryKeyEventBus, type KeyEventBus } from "@latchkey/events";
import { VerifyResult } from "@latchkey/proto";
import { createVerifier } from "@latchkey/verifier";
import { afterAll, beforeAll, expect, it } from "vitest";
import { freshDatabaseUrl } from "../harness/index.js";
import { eventually, waitUntil } from "../harness/wait.js";
import { startTestService, type TestService } from "./start.js";

let a: TestService;
let b: TestService;
let lagging: TestService;
const bus = createMemoryKeyEventBus();

/**
 * The same bus, but while `hold()` is in force, events wait (in order) before they reach this
 * subscriber, like a stalled link, until `release()`: the lag lasts exactly as long as the test
 * needs, however slow the machine.
 */
function gatedBus(inner: KeyEventBus): KeyEventBus & { hold(): void; release(): void } {
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  return {
    ...inner,
    subscribe: (subscriber, options) =>
      inner.subscribe(
        {
          ...subscriber,
          onEvent: async (delivery) => {
            if (gate !== undefined) await gate;
            await subscriber.onEvent(delivery);
          },
        },
        options,
      ),
    // Closing is the shared bus's owner's job.
    close: async () => {},
    hold() {
      gate ??= new Promise((resolve) => {
        open = resolve;
      });
    },
    release() {
      open?.();
      gate = undefined;
      open = undefined;
    },
  };
}
const laggingBus = gatedBus(bus);

beforeAll(async () => {
  const databaseUrl = await freshDatabaseUrl("replicas");
  a = await startTestService({ databaseUrl, bus });
  b = await startTestService({ databaseUrl, bus });
  lagging = await startTestService({ databaseUrl, bus: laggingBus });
});
afterAll(async () => {
  laggingBus.release();
  await Promise.all([a?.close(), b?.close(), lagging?.close()]);
  await bus.close();
});

it("a revocation on replica A reaches replica B's cache through the bus", async () => {
  const teamId = (await a.teams().createTeam({ name: "replicated" })).team?.id ?? "";
  const { key, token } = await a.tokens().issue({ teamId, name: "shared" });
  for (let i = 0; i < 10; i++)
    expect((await b.tokens(null).verify({ token })).result).toBe(VerifyResult.VALID);
  await a.tokens().revoke({ keyId: key?.id ?? "" });
  await waitUntil(async () => (await b.tokens(null).verify({ token })).result === VerifyResult.REVOKED, {
    what: "REVOKED from replica B",
    timeoutMs: 2_000,
    intervalMs: 5,
  });
});

it("a scope change on replica B reaches replica A's cache", async () => {
  const teamId = (await a.teams().createTeam({ name: "replicated-2" })).team?.id ?? "";
  const { key, token } = await b.tokens().issue({ teamId, name: "shared", scopes: ["write"] });
  for (let i = 0; i < 10; i++) {
    expect((await a.tokens(null).verify({ token, requiredScopes: ["write"] })).result).toBe(
      VerifyResult.VALID,
    );
  }
  await b.tokens().update({ keyId: key?.id ?? "", scopes: { values: ["read"] } });
  const answer = await eventually(
    () => a.tokens(null).verify({ token, requiredScopes: ["write"] }),
    (reply) => reply.result === VerifyResult.INSUFFICIENT_SCOPE,
    { what: "INSUFFICIENT_SCOPE from replica A", timeoutMs: 2_000, intervalMs: 5 },
  );
  expect(answer.result).toBe(VerifyResult.INSUFFICIENT_SCOPE);
  expect(answer.missingScopes).toEqual(["write"]);
});

it("a verifier on the in-process bus that applied a revocation is not answered VALID by a lagging replica", async () => {
  const verifier = createVerifier({ tokenService: lagging.grpcUrl, events: bus, prefix: "lk" });
  try {
    await verifier.ready();
    const teamId = (await a.teams().createTeam({ name: "replicated-3" })).team?.id ?? "";
    const { key, token } = await a.tokens().issue({ teamId, name: "shared" });
    expect((await verifier.verify(token)).code).toBe("VALID");
    const before = lagging.handle.eventFeed().appliedSequence;
    laggingBus.hold();
    await a.tokens().revoke({ keyId: key?.id ?? "", waitTimeout: { seconds: 5n } });
    expect(verifier.status().appliedSequence).toBeGreaterThan(before);
    expect(lagging.handle.eventFeed().appliedSequence).toBe(before);
    // The lagging replica's row cache still says VALID to a caller that has seen no event ...
    expect((await lagging.tokens(null).verify({ token })).result).toBe(VerifyResult.VALID);
    // ... but not to the verifier, which has.
    expect(await verifier.verify(token)).toMatchObject({ ok: false, code: "REVOKED" });
    expect(lagging.handle.eventFeed().appliedSequence).toBe(before);
    expect(verifier.verifyCached(token)?.code).not.toBe("VALID");
  } finally {
    laggingBus.release();
    await verifier.close();
  }
});
