// Seed 004 (shared/seeds/004_*): opengateway's team keys, `og_live_` for production. Keys already in
// use are imported by their SHA-256; new ones are issued in the team's format (og_live_), or as
// og_test_ for staging when Issue names that format. The sidecar runs the shipped
// policy-004-team-keys.yaml (the production data plane: prod keys only), and the test walks the
// seed's rotation: create the new key, move traffic to it while the old one still works, watch the
// old key's traffic drop to zero, then revoke it (refused at once: 403, the bound route's one answer for a key it does not accept); and a rotation whose grace period
// simply ends. Every request is tagged in the access log with the key that made it, never the key.
import { randomBytes } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send } from "../harness/http-client.js";
import { bearer, errorOf } from "../sidecar/credentials.js";
import { echoed } from "../sidecar/recording-upstream.js";
import type { SidecarProcess } from "../sidecar/sidecar-process.js";
import { importRow, sha256Hex } from "../token-service/import-rows.js";
import { rpcError } from "../token-service/rpc-error.js";
import { type SeedStack, STARTUP_MS, startSeedStack } from "./seed-stack.js";

const FORMATS = JSON.stringify([
  { name: "og-live", kind: "base64url", prefix: "og_live_" },
  { name: "og-test", kind: "base64url", prefix: "og_test_" },
]);
// A key opengateway issued before the move, held by the team's chat worker.
const PROD_WORKER = `og_live_${randomBytes(32).toString("base64url")}`;

let stack: SeedStack;
let gateway: SidecarProcess;
let teamId: string;
let worker: { token: string; id: string };
const tokensSeen: string[] = [PROD_WORKER];

beforeAll(async () => {
  stack = await startSeedStack({ keyFormats: FORMATS });
  [gateway, teamId] = await Promise.all([
    stack.sidecar({ policy: "policy-004-team-keys.yaml" }),
    stack.service
      .teams()
      .createTeam({ name: "acme", keyFormat: "og-live" })
      .then(({ team }) => team?.id ?? ""),
  ]);
  const { results } = await stack.service.tokens().importKeys({
    keys: [
      importRow(teamId, {
        externalId: "ogk_1",
        name: "prod-chat-worker",
        environment: "prod",
        format: "og-live",
        sha256: sha256Hex(PROD_WORKER),
        hint: `og_live_…${PROD_WORKER.slice(-4)}`,
      }),
    ],
  });
  worker = { token: PROD_WORKER, id: results[0]?.keyId ?? "" };
}, STARTUP_MS);
afterAll(() => stack?.close());

const completions = (token: string) =>
  send(
    gateway.url,
    "POST",
    "/v1/chat/completions",
    { ...bearer(token), "content-type": "application/json" },
    "{}",
  );

async function issue(name: string, fields: { environment: string; format?: string }) {
  const { token, key } = await stack.service.tokens().issue({ teamId, name, ...fields });
  tokensSeen.push(token);
  return { token, id: key?.id ?? "" };
}

describe("seed 004: team keys", () => {
  it("are og_live_ in the team's format, og_test_ when Issue asks, and the imported key keeps working", async () => {
    const prod = await issue("prod-batch", { environment: "prod" });
    expect(prod.token).toMatch(/^og_live_[A-Za-z0-9_-]{43}$/);
    const staging = await issue("staging-chat-worker", { environment: "staging", format: "og-test" });
    expect(staging.token).toMatch(/^og_test_[A-Za-z0-9_-]{43}$/);
    for (const key of [worker, prod]) {
      const response = await completions(key.token);
      expect(response.status).toBe(200);
      expect(echoed(response).headers).toMatchObject({
        "x-latchkey-key-id": key.id,
        "x-latchkey-team-id": teamId,
      });
    }
    expect(echoed(await completions(worker.token)).headers["x-latchkey-key-name"]).toBe("prod-chat-worker");
  });

  it("keep environments apart: a staging key is refused by the production data plane", async () => {
    const staging = await issue("staging-worker", { environment: "staging", format: "og-test" });
    const refused = await completions(staging.token);
    expect(refused.status).toBe(403);
    expect(errorOf(refused).message).toContain("prod");
  });
});

describe("seed 004: rotate first, revoke second", () => {
  it("keeps the old key working while traffic moves, shows its traffic drop to zero, then refuses it", async () => {
    // 1. Create the new key: Rotate, with a day's grace for the deploy.
    const rotated = await stack.service
      .tokens()
      .rotate({ keyId: worker.id, gracePeriod: { seconds: 86_400n } });
    const next = { token: rotated.token, id: rotated.key?.id ?? "" };
    tokensSeen.push(next.token);
    expect(next.token).toMatch(/^og_live_/);
    expect(rotated.key).toMatchObject({
      name: "prod-chat-worker",
      environment: "prod",
      rotatedFrom: worker.id,
    });
    // 2. Deploy it: both keys work meanwhile, each request tagged with its own key.
    for (let i = 0; i < 3; i++) expect((await completions(worker.token)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await completions(next.token)).status).toBe(200);
    // 3. Watch the old key's traffic, as Get on the new key reports it from the sidecar's usage counts:
    //    five requests (two in the test above, three here), and none more while the new key is used.
    const traffic = async () => {
      const { traffic: own, predecessorTraffic } = await stack.service.tokens().get({ keyId: next.id });
      return { old: predecessorTraffic?.requestsLast5m ?? 0n, new: own?.requestsLast5m ?? 0n };
    };
    const until = async (done: (seen: { old: bigint; new: bigint }) => boolean) => {
      const deadline = Date.now() + 30_000;
      while (!done(await traffic()) && Date.now() < deadline)
        await new Promise((wait) => setTimeout(wait, 200));
      return traffic();
    };
    expect((await until((seen) => seen.old >= 5n && seen.new >= 2n)).old).toBe(5n);
    for (let i = 0; i < 3; i++) expect((await completions(next.token)).status).toBe(200);
    expect(await until((seen) => seen.new >= 5n)).toEqual({ old: 5n, new: 5n });
    // 4. Revoke the old key: refused at once, the new one untouched; revocation cannot be undone.
    const { propagation } = await stack.service
      .tokens()
      .revoke({ keyId: worker.id, reason: "rotated", waitTimeout: { seconds: 5n } });
    expect(propagation?.complete).toBe(true);
    // The data plane is bound to prod keys: every credential that is not a usable prod key gets
    // the binding's one 403, a revoked key included (README: binding keys to teams and environments).
    expect((await completions(worker.token)).status).toBe(403);
    expect((await completions(next.token)).status).toBe(200);
    expect((await rpcError(stack.service.tokens().rotate({ keyId: worker.id }))).code).toBe(
      Code.FailedPrecondition,
    );
  }, 90_000);

  it("refuses the old key once a grace period ends, with no revoke", async () => {
    const old = await issue("prod-cron", { environment: "prod" });
    expect((await completions(old.token)).status).toBe(200);
    const rotated = await stack.service.tokens().rotate({ keyId: old.id, gracePeriod: { seconds: 2n } });
    tokensSeen.push(rotated.token);
    const ends = Date.parse(
      new Date(Number(rotated.previousKey?.expireTime?.seconds ?? 0n) * 1000).toISOString(),
    );
    const statuses: Array<[number, number]> = [];
    while (Date.now() < ends + 15_000) {
      const at = Date.now();
      const { status } = await completions(old.token);
      statuses.push([at, status]);
      if (status === 403) break;
      await new Promise((done) => setTimeout(done, 100));
    }
    // Accepted until the end of the grace period (less the second the expiry is rounded to), refused after.
    expect(statuses[0]?.[1]).toBe(200);
    expect(statuses.filter(([at]) => at < ends - 1_000).every(([, status]) => status === 200)).toBe(true);
    expect(statuses.at(-1)?.[1]).toBe(403);
    expect((await completions(rotated.token)).status).toBe(200);
  }, 60_000);
});

describe("seed 004: every request is tagged with its key in the access log", () => {
  it("carries the key id and team of each request, and never a key", async () => {
    const lines = () => gateway.accessLines().filter((line) => line.path === "/v1/chat/completions");
    await gateway.waitForAccessLine((line) => line.status === 403 && line.decision === "invalid_credential");
    const allowed = lines().filter((line) => line.status === 200);
    expect(allowed.length).toBeGreaterThanOrEqual(10);
    for (const line of allowed) {
      expect(line.keyId).toMatch(/^key_/);
      expect(line.teamId).toBe(teamId);
    }
    expect(new Set(allowed.map((line) => line.keyId)).has(worker.id)).toBe(true);
    const output = gateway.output();
    for (const token of tokensSeen) {
      expect(output).not.toContain(token);
      expect(output).not.toContain(token.slice("og_live_".length));
    }
  });
});
