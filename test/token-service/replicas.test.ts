// Two replicas on one database sharing one key event bus: a change made on one
// drops the other's cached row as soon as the event arrives.
import { setTimeout as sleep } from "node:timers/promises";
import { createMemoryKeyEventBus } from "@latchkey/events";
import { VerifyResult } from "@latchkey/proto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { freshDatabaseUrl } from "../harness/index.js";
import { startTestService, type TestService } from "./start.js";

let a: TestService;
let b: TestService;
const bus = createMemoryKeyEventBus();
beforeAll(async () => {
  const databaseUrl = await freshDatabaseUrl("replicas");
  a = await startTestService({ databaseUrl, bus });
  b = await startTestService({ databaseUrl, bus });
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await bus.close();
});

async function verifyUntil(service: TestService, token: string, want: VerifyResult): Promise<VerifyResult> {
  const deadline = Date.now() + 2_000;
  let result: VerifyResult;
  do {
    result = (await service.tokens(null).verify({ token })).result;
    if (result === want) return result;
    await sleep(5);
  } while (Date.now() < deadline);
  return result;
}

it("a revocation on replica A reaches replica B's cache through the bus", async () => {
  const teamId = (await a.teams().createTeam({ name: "replicated" })).team?.id ?? "";
  const { key, token } = await a.tokens().issue({ teamId, name: "shared" });
  for (let i = 0; i < 10; i++)
    expect((await b.tokens(null).verify({ token })).result).toBe(VerifyResult.VALID);
  await a.tokens().revoke({ keyId: key?.id ?? "" });
  expect(await verifyUntil(b, token, VerifyResult.REVOKED)).toBe(VerifyResult.REVOKED);
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
  const deadline = Date.now() + 2_000;
  let answer = await a.tokens(null).verify({ token, requiredScopes: ["write"] });
  while (answer.result !== VerifyResult.INSUFFICIENT_SCOPE && Date.now() < deadline) {
    await sleep(5);
    answer = await a.tokens(null).verify({ token, requiredScopes: ["write"] });
  }
  expect(answer.result).toBe(VerifyResult.INSUFFICIENT_SCOPE);
  expect(answer.missingScopes).toEqual(["write"]);
});
