// Expiry is announced: when a key's expiry passes, the sweeper writes one
// EXPIRED key event (so sidecars can close what the key has open), once
// across replicas, and not for keys that are revoked.
import { setTimeout as sleep } from "node:timers/promises";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createMemoryKeyEventBus, type KeyEventDelivery } from "@latchkey/events";
import { KeyEventType } from "@latchkey/proto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { freshDatabaseUrl } from "../harness/index.js";
import { startTestService, type TestService } from "./start.js";

let a: TestService;
let b: TestService;
const bus = createMemoryKeyEventBus();
const seen: KeyEventDelivery[] = [];
beforeAll(async () => {
  await bus.subscribe({ onEvent: (delivery) => void seen.push(delivery) });
  const databaseUrl = await freshDatabaseUrl("expiry");
  const settings = { expirySweepMs: 100 };
  a = await startTestService({ databaseUrl, bus, settings });
  b = await startTestService({ databaseUrl, bus, settings });
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await bus.close();
});

it("announces each expiry once, across two replicas, and skips revoked keys", async () => {
  const teamId = (await a.teams().createTeam({ name: "expiring" })).team?.id ?? "";
  // Long enough for the revocation below to land first on a busy machine (two replicas' outbox
  // currency rounds and every other test share the cores).
  const expireTime = timestampFromDate(new Date(Date.now() + 3_000));
  const expiring = await a.tokens().issue({ teamId, name: "short-lived", expireTime });
  const revoked = await a.tokens().issue({ teamId, name: "revoked first", expireTime });
  const lasting = await a.tokens().issue({ teamId, name: "lasting" });
  await a.tokens().revoke({ keyId: revoked.key?.id ?? "" });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !seen.some((d) => d.event.type === KeyEventType.EXPIRED)) await sleep(50);
  await sleep(500); // time for a duplicate to show up, if there were one
  const expired = seen.filter((d) => d.event.type === KeyEventType.EXPIRED).map((d) => d.event.keyId);
  expect(expired).toEqual([expiring.key?.id]);
  expect(expired).not.toContain(lasting.key?.id);
  const { rows } = await a.sql.query(
    "select count(*)::int as n from key_event_outbox where event_type = $1",
    [KeyEventType.EXPIRED],
  );
  expect(rows[0].n).toBe(1);
});
