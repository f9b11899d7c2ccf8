// Seed 003 (shared/seeds/003_*): OpenAgora keeps only SHA-256 hashes of its `oag_` + 32 hex keys. The
// operator exports them (one row per agent key, its owner the agent) and imports them with
// `latchkey-token-service import`; the agents keep the keys they hold. The sidecar runs the shipped
// policy-003-agents-owner.yaml with ratelimit-003-trust-tiers.yaml and the cron secret, and the test
// walks the seed: its endpoint table, owner-only agent edits, the Trust Gateway and the cron secret.
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send } from "../harness/http-client.js";
import { bearer, errorOf } from "../sidecar/credentials.js";
import { echoed, identityOf } from "../sidecar/recording-upstream.js";
import type { SidecarProcess } from "../sidecar/sidecar-process.js";
import { type ImportRun, runImportCommand } from "../token-service/import-command-process.js";
import { sha256Hex } from "../token-service/import-rows.js";
import { ROOT_KEY } from "../token-service/start.js";
import { type SeedStack, STARTUP_MS, startSeedStack } from "./seed-stack.js";

const FORMATS = JSON.stringify([{ name: "oag", kind: "hex", prefix: "oag_", length: 32 }]);
const CRON = `cron-${randomBytes(16).toString("hex")}`;
const CRON_PREVIOUS = `cron-${randomBytes(16).toString("hex")}`;
const LAST_USED_THERE = "2026-11-30T08:12:00Z";

/** One key of OpenAgora's database: the agent holds `token`; the export has its hash only. */
interface AgentKey {
  readonly externalId: string;
  readonly owner: string;
  readonly token: string;
  readonly tier?: string;
}

const agentKey = (n: number, owner: string, tier?: string): AgentKey => ({
  externalId: `ak_${String(n).padStart(4, "0")}`,
  owner,
  token: `oag_${randomBytes(16).toString("hex")}`,
  ...(tier === undefined ? {} : { tier }),
});
const alice = agentKey(1, "agent-alice", "connected");
const bob = agentKey(2, "agent-bob");
const erin = agentKey(3, "agent-erin");
// The operators' own key: no agent owns it.
const ops: AgentKey = { ...agentKey(4, ""), externalId: "ak_ops" };
const KEYS = [alice, bob, erin, ops, ...Array.from({ length: 20 }, (_, i) => agentKey(10 + i, `agent-${i}`))];

/** OpenAgora's api_keys table as the operator exports it: CSV with the import command's columns. */
function exportCsv(teamId: string): string {
  const rows = KEYS.map((key) => {
    const metadata = key.tier === undefined ? "" : `"{""tier"":""${key.tier}""}"`;
    return [
      key.externalId,
      teamId,
      key.owner === "" ? "operations" : `${key.owner} key`,
      key.owner,
      "write",
      sha256Hex(key.token),
      "oag",
      `oag_…${key.token.slice(-4)}`,
      "2025-06-01T12:00:00Z",
      LAST_USED_THERE,
      metadata,
    ].join(",");
  });
  const header =
    "external_id,team_id,name,owner,scopes,token_sha256,format,hint,create_time,last_used_time,metadata";
  return `${[header, ...rows].join("\n")}\n`;
}

let stack: SeedStack;
let agora: SidecarProcess;
let teamId: string;
let imported: ImportRun;
const keyIdOf = new Map<string, string>();

beforeAll(async () => {
  stack = await startSeedStack({ keyFormats: FORMATS });
  teamId = (await stack.service.teams().createTeam({ name: "openagora", keyFormat: "oag" })).team?.id ?? "";
  const file = join(mkdtempSync(join(tmpdir(), "latchkey-seed-003-")), "openagora-api-keys.csv");
  writeFileSync(file, exportCsv(teamId));
  [imported, agora] = await Promise.all([
    runImportCommand([file], { url: stack.service.grpcUrl, adminKey: ROOT_KEY }),
    stack.sidecar({
      policy: "policy-003-agents-owner.yaml",
      rateLimits: "ratelimit-003-trust-tiers.yaml",
      env: { CRON_SECRET: CRON, CRON_SECRET_PREVIOUS: CRON_PREVIOUS },
    }),
  ]);
  const { keys } = await stack.service.tokens().list({ teamId, pageSize: 100 });
  for (const key of keys) keyIdOf.set(key.externalId, key.id);
}, STARTUP_MS);
afterAll(() => stack?.close());

const as = (key: AgentKey) => bearer(key.token);
const put = (path: string, headers: Record<string, string> = {}) => send(agora.url, "PUT", path, headers);

describe("seed 003: the SHA-256 hashes, imported", () => {
  it("are all in after one run of the import command, which shows no hash", () => {
    expect(imported.stdout).toBe(
      `imported ${KEYS.length}, already there 0, bad rows 0 (of ${KEYS.length} rows read)\n`,
    );
    expect(imported.code).toBe(0);
    for (const key of KEYS) expect(imported.stdout + imported.stderr).not.toContain(sha256Hex(key.token));
  });

  it("let every agent edit its own agent with the key it already holds", async () => {
    for (const key of KEYS.filter((each) => each.owner !== "")) {
      const response = await put(`/api/agents/${key.owner}`, as(key));
      expect(response.status, key.owner).toBe(200);
      expect(echoed(response).headers).toMatchObject({
        "x-latchkey-key-id": keyIdOf.get(key.externalId),
        "x-latchkey-owner": key.owner,
        "x-latchkey-team-id": teamId,
      });
    }
  });

  it("keep what the old system knew, and move last_used_at on use", async () => {
    const keyId = keyIdOf.get(alice.externalId) ?? "";
    const { key } = await stack.service.tokens().get({ keyId });
    expect(key).toMatchObject({
      format: "oag",
      hint: `oag_…${alice.token.slice(-4)}`,
      externalId: alice.externalId,
    });
    expect(key?.metadata).toEqual({ tier: "connected" });
    expect(key?.createTime && timestampDate(key.createTime).toISOString()).toBe("2025-06-01T12:00:00.000Z");
    // The sidecar's requests above reach last_used_at through its usage batches (every second).
    const deadline = Date.now() + 30_000;
    let lastUsed = Date.parse(LAST_USED_THERE);
    while (lastUsed <= Date.parse(LAST_USED_THERE) && Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 200));
      const { key: now } = await stack.service.tokens().get({ keyId });
      lastUsed = now?.lastUsedTime ? timestampDate(now.lastUsedTime).getTime() : 0;
    }
    expect(lastUsed).toBeGreaterThan(Date.parse(LAST_USED_THERE));
  }, 60_000);
});

describe("seed 003: the endpoint table", () => {
  // [method, path, without a key, with agent-alice's key]; every row from its own client address,
  // so the anonymous tier's one request per 5 minutes is each row's own.
  const TABLE: Array<[string, string, number, number]> = [
    ["GET", "/api/agents?q=weather", 200, 200],
    ["GET", "/api/agents/agent-bob", 200, 200],
    ["GET", "/api/agents/agent-bob/agent-card.json", 200, 200],
    ["POST", "/api/agents", 200, 200],
    ["PUT", "/api/agents/agent-alice", 401, 200],
    ["DELETE", "/api/agents/agent-alice", 401, 200],
    ["PUT", "/api/agents/agent-bob", 401, 403],
    ["POST", "/api/proxy/agent-bob", 200, 200],
    ["POST", "/api/keys", 200, 200],
    ["DELETE", "/api/keys/key_123", 401, 200],
    ["POST", "/api/connections", 401, 200],
    ["PUT", "/api/connections/conn_1", 401, 200],
    ["GET", "/api/community/posts/post_1/comments", 200, 200],
    ["POST", "/api/cron/health-check", 401, 401],
  ];

  it("answers each endpoint as the seed's table says, with and without a key", async () => {
    for (const [row, [method, path, anonymous, keyed]] of TABLE.entries()) {
      const from = (n: number) => ({ "x-forwarded-for": `203.0.113.${2 * row + n}` });
      expect((await send(agora.url, method, path, from(1))).status, `${method} ${path}`).toBe(anonymous);
      const response = await send(agora.url, method, path, { ...from(2), ...as(alice) });
      expect(response.status, `${method} ${path} with a key`).toBe(keyed);
    }
  });
});

describe("seed 003: a key may only change its own agent", () => {
  it("forwards an edit of the key's own agent, whatever its encoding", async () => {
    const encoded = await send(agora.url, "DELETE", "/api/agents/%61gent-alice/skills/1", as(alice));
    expect(encoded.status).toBe(200);
    expect(echoed(encoded).path).toBe("/api/agents/agent-alice/skills/1");
  });

  it("refuses another agent's edit with 403 and a clear reason, whatever its spelling", async () => {
    for (const path of [
      "/api/agents/agent-bob",
      "/api/agents/AGENT-ALICE",
      "/api/agents/agent-alice.",
      "/api/agents/agent-alice;x",
      "/api/agents/agent-alice/../agent-bob",
      "/api/agents/agent-%62ob",
    ]) {
      const response = await put(path, as(alice));
      expect(response.status, path).toBe(403);
      expect(errorOf(response).message).toContain("only for its own owner");
    }
    expect((await put("/api/agents/agent-alice%2Fx", as(alice))).status).toBe(400);
    expect((await put("/api/agents/agent-alice", as(ops))).status).toBe(403);
    expect((await put("/api/agents/agent-alice")).status).toBe(401);
    const line = await agora.waitForAccessLine((entry) => entry.decision === "wrong_owner");
    expect(line.status).toBe(403);
  });

  it("gives a new agent's issued key the oag_ format and its owner", async () => {
    const { token, key } = await stack.service
      .tokens()
      .issue({ teamId, name: "agent-dave key", scopes: ["write"], owner: "agent-dave" });
    expect(token).toMatch(/^oag_[0-9a-f]{32}$/);
    expect(key?.format).toBe("oag");
    expect((await put("/api/agents/agent-dave", bearer(token))).status).toBe(200);
    expect((await put("/api/agents/agent-alice", bearer(token))).status).toBe(403);
  });

  it("applies an owner changed by Update (a grant, announced to verifiers)", async () => {
    await stack.service.tokens().update({ keyId: keyIdOf.get(bob.externalId) ?? "", owner: "agent-bobby" });
    const deadline = Date.now() + 10_000;
    let status = 0;
    while (Date.now() < deadline) {
      status = (await put("/api/agents/agent-bobby", as(bob))).status;
      if (status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toBe(200);
    expect((await put("/api/agents/agent-bob", as(bob))).status).toBe(403);
  });

  it("strips spoofed owner headers in every spelling", async () => {
    const spoofed = {
      "x-latchkey-owner": "agent-bob",
      x_latchkey_owner: "agent-bob",
      "x.latchkey.owner": "agent-bob",
      "X-Latchkey_Environment": "prod",
    };
    const anonymous = await send(agora.url, "GET", "/api/agents/agent-bob", spoofed);
    expect(anonymous.status).toBe(200);
    expect(identityOf(anonymous)).toEqual([]);
    const keyed = await put("/api/agents/agent-alice", { ...spoofed, ...as(alice) });
    expect(keyed.status).toBe(200);
    const identity = Object.fromEntries(identityOf(keyed));
    expect(identity["x-latchkey-owner"]).toBe("agent-alice");
    expect(Object.keys(identity).every((name) => /^x-latchkey-[a-z-]+$/.test(name))).toBe(true);
  });

  it("answers forward-auth with the owner, and refuses another agent's edit there too", async () => {
    const auth = (uri: string, extra: Record<string, string> = {}) =>
      send(agora.url, "GET", "/_latchkey/auth", {
        "x-original-uri": uri,
        "x-original-method": "PUT",
        ...as(alice),
        ...extra,
      });
    const allowed = await auth("/api/agents/agent-alice");
    expect(allowed.status).toBe(200);
    expect(allowed.headers["x-latchkey-owner"]).toBe("agent-alice");
    expect((await auth("/api/agents/agent-bob")).status).toBe(403);
    expect((await auth("/api/agents/agent-alice", { x_latchkey_owner: "agent-bob" })).status).toBe(400);
  });

  it("refuses a key revoked in Latchkey at once", async () => {
    const { propagation } = await stack.service.tokens().revoke({
      keyId: keyIdOf.get(erin.externalId) ?? "",
      reason: "agent removed",
      waitTimeout: { seconds: 5n },
    });
    expect(propagation?.complete).toBe(true);
    expect((await put("/api/agents/agent-erin", as(erin))).status).toBe(401);
  });
});

describe("seed 003: the Trust Gateway is an optional-key route", () => {
  it("forwards a call without a key anonymously, limited per client address by the unverified tier", async () => {
    const anonymous = (address: string) =>
      send(agora.url, "POST", "/api/proxy/agent-bob", { "x-forwarded-for": address });
    const first = await anonymous("198.51.100.20");
    expect(first.status).toBe(200);
    expect(identityOf(first)).toEqual([]);
    expect((await anonymous("198.51.100.20")).status).toBe(429);
    expect((await anonymous("198.51.100.21")).status).toBe(200);
  });

  it("refuses a key that does not verify with 401, and forwards a valid key with its identity and tier", async () => {
    const wrong = `oag_${randomBytes(16).toString("hex")}`;
    expect((await send(agora.url, "POST", "/api/proxy/agent-bob", bearer(wrong))).status).toBe(401);
    for (let i = 0; i < 3; i += 1) {
      const good = await send(agora.url, "POST", "/api/proxy/agent-bob", {
        ...as(alice),
        "x-forwarded-for": "198.51.100.20",
      });
      expect(good.status).toBe(200);
      expect(echoed(good).headers["x-latchkey-key-id"]).toBe(keyIdOf.get(alice.externalId));
    }
  });
});

describe("seed 003: the cron secret", () => {
  it("accepts CRON_SECRET and, during its rotation, CRON_SECRET_PREVIOUS; no agent key", async () => {
    const cron = (headers: Record<string, string> = {}) =>
      send(agora.url, "POST", "/api/cron/health-check", headers);
    expect((await cron(bearer(CRON))).status).toBe(200);
    expect((await cron(bearer(CRON_PREVIOUS))).status).toBe(200);
    expect((await cron(as(alice))).status).toBe(401);
    expect((await cron()).status).toBe(401);
    expect((await send(agora.url, "GET", "/api/cron/health-check")).status).toBe(401);
    expect(agora.output()).not.toContain(CRON);
  });
});
