// Owners, environments, optional-key routes and rotating secrets end to end: the real token-service
// (PostgreSQL, NATS), real sidecar processes configured by the shipped example files
// (services/sidecar/examples/policy-003-agents-owner.yaml, policy-000-reads-public.yaml) and one
// inline policy for environment requirements and rotation windows.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RawResponse as Response, send } from "../harness/http-client.js";
import { type NatsServer, startNats } from "../harness/index.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { type EchoedRequest, type RecordingUpstream, startRecordingUpstream } from "./recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "./sidecar-process.js";

const EXAMPLES = new URL("../../services/sidecar/examples/", import.meta.url);
const example = (name: string) => readFileSync(new URL(name, EXAMPLES), "utf8");
const RATE_LIMITS_003 = new URL("ratelimit-003-trust-tiers.yaml", EXAMPLES).pathname;

const CRON = "cron-secret-current-0123456789";
const CRON_PREVIOUS = "cron-secret-previous-0123456789";
// The placeholder written in policy-000-reads-public.yaml (used when the variable is unset).
const FILE_SECRET = "og_replace-me-with-32-random-base64url-chars";
const ENV_SECRET = "og_from-the-environment-0123456789abcdef";

const ROTATION_POLICY = `
version: 1
preset: all-private
rules:
  - name: prod-only
    path: /billing/**
    kind: key
    environments: [prod]
  - name: in-window
    path: /hooks/open
    kind: secret
    secretEnv: HOOK_SECRET
    previousSecret: hook-secret-previous-0123456789
    previousSecretUntil: 2999-01-01T00:00:00Z
  - name: window-ended
    path: /hooks/closed
    kind: secret
    secretEnv: HOOK_SECRET
    previousSecret: hook-secret-previous-0123456789
    previousSecretUntil: 2020-01-01T00:00:00Z
`;

let nats: NatsServer;
let service: TestService;
let upstream: RecordingUpstream;
/** policy-003-agents-owner.yaml with its rate-limit file; loopback is a trusted proxy (the default). */
let agora: SidecarProcess;
/** policy-000-reads-public.yaml without OPENGRAM_INSTANCE_SECRET: the file's secret. */
let opengramFile: SidecarProcess;
/** policy-000-reads-public.yaml with OPENGRAM_INSTANCE_SECRET: the environment wins. */
let opengramEnv: SidecarProcess;
let rotation: SidecarProcess;
let teamId: string;
let alice: { token: string; id: string };
let bob: { token: string; id: string };
let ownerless: { token: string; id: string };
let staging: { token: string; id: string };

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const echoed = (response: Response) => response.json<EchoedRequest>();
const errorOf = (response: Response) => response.json<{ error: { code: string; message: string } }>().error;
const identityOf = (response: Response) =>
  Object.entries(echoed(response).headers).filter(([name]) =>
    name.replace(/[_.]/g, "-").startsWith("x-latchkey-"),
  );

async function issue(name: string, fields: { environment?: string; owner?: string; tier?: string }) {
  const issued = await service.tokens().issue({ teamId, name, scopes: ["write"], ...fields });
  return { token: issued.token, id: issued.key?.id ?? "" };
}

beforeAll(async () => {
  [nats, upstream] = await Promise.all([startNats(), startRecordingUpstream()]);
  service = await startTestService({ natsUrl: nats.url });
  teamId = (await service.teams().createTeam({ name: "owners-e2e" })).team?.id ?? "";
  const common = { upstream: upstream.url, tokenServiceUrl: service.grpcUrl, natsUrl: nats.url };
  [agora, opengramFile, opengramEnv, rotation] = await Promise.all([
    spawnSidecar({
      ...common,
      policy: example("policy-003-agents-owner.yaml"),
      env: { LATCHKEY_RATE_LIMITS: RATE_LIMITS_003, CRON_SECRET: CRON, CRON_SECRET_PREVIOUS: CRON_PREVIOUS },
    }),
    spawnSidecar({ ...common, policy: example("policy-000-reads-public.yaml") }),
    spawnSidecar({
      ...common,
      policy: example("policy-000-reads-public.yaml"),
      env: { OPENGRAM_INSTANCE_SECRET: ENV_SECRET },
    }),
    spawnSidecar({
      ...common,
      policy: ROTATION_POLICY,
      env: { HOOK_SECRET: "hook-secret-current-0123456789" },
    }),
  ]);
  [alice, bob, ownerless, staging] = await Promise.all([
    issue("agent-alice", { environment: "prod", owner: "agent-alice", tier: "connected" }),
    issue("agent-bob", { environment: "prod", owner: "agent-bob" }),
    issue("no-owner", { environment: "prod" }),
    issue("staging-key", { environment: "staging", owner: "agent-carol" }),
  ]);
});

afterAll(async () => {
  await Promise.all([agora?.stop(), opengramFile?.stop(), opengramEnv?.stop(), rotation?.stop()]);
  await service?.close();
  await upstream?.app.close();
  await nats?.dispose();
});

describe("seed 003: a key may only change its own agent", () => {
  it("forwards an edit of the key's own agent with its owner and environment", async () => {
    const response = await send(agora.url, "PUT", "/agents/agent-alice", bearer(alice.token));
    expect(response.status).toBe(200);
    expect(echoed(response).headers).toMatchObject({
      "x-latchkey-key-id": alice.id,
      "x-latchkey-owner": "agent-alice",
      "x-latchkey-environment": "prod",
    });
    const encoded = await send(agora.url, "DELETE", "/agents/%61gent-alice/skills/1", bearer(alice.token));
    expect(encoded.status).toBe(200);
    expect(echoed(encoded).path).toBe("/agents/agent-alice/skills/1");
  });

  it("refuses another agent's edit with 403 and a clear reason, whatever its spelling", async () => {
    for (const path of [
      "/agents/agent-bob",
      "/agents/AGENT-ALICE",
      "/agents/agent-alice.",
      "/agents/agent-alice;x",
      "/agents/agent-alice/../agent-bob",
      "/agents/agent-%62ob",
    ]) {
      const response = await send(agora.url, "PUT", path, bearer(alice.token));
      expect(response.status, path).toBe(403);
      expect(errorOf(response).message).toContain("only for its own owner");
    }
    expect((await send(agora.url, "PUT", "/agents/agent-alice%2Fx", bearer(alice.token))).status).toBe(400);
    expect((await send(agora.url, "PUT", "/agents/agent-alice", bearer(ownerless.token))).status).toBe(403);
    expect((await send(agora.url, "PUT", "/agents/agent-alice")).status).toBe(401);
    const line = await agora.waitForAccessLine((entry) => entry.decision === "wrong_owner");
    expect(line.status).toBe(403);
  });

  it("applies an owner changed by Update (a grant, announced to verifiers)", async () => {
    await service.tokens().update({ keyId: bob.id, owner: "agent-bobby" });
    const deadline = Date.now() + 10_000;
    let status = 0;
    while (Date.now() < deadline) {
      status = (await send(agora.url, "PUT", "/agents/agent-bobby", bearer(bob.token))).status;
      if (status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toBe(200);
    expect((await send(agora.url, "PUT", "/agents/agent-bob", bearer(bob.token))).status).toBe(403);
  });

  it("strips spoofed owner and environment headers in every spelling", async () => {
    const spoofed = {
      "x-latchkey-owner": "agent-bob",
      x_latchkey_owner: "agent-bob",
      "x.latchkey.owner": "agent-bob",
      "X-Latchkey_Environment": "prod",
      "x-latchkey-environment": "prod",
      "x.latchkey.environment": "prod",
    };
    const anonymous = await send(agora.url, "GET", "/agents/agent-bob", spoofed);
    expect(anonymous.status).toBe(200);
    expect(identityOf(anonymous)).toEqual([]);
    const keyed = await send(agora.url, "PUT", "/agents/agent-alice", { ...spoofed, ...bearer(alice.token) });
    expect(keyed.status).toBe(200);
    const identity = Object.fromEntries(identityOf(keyed));
    expect(identity["x-latchkey-owner"]).toBe("agent-alice");
    expect(Object.keys(identity).every((name) => /^x-latchkey-[a-z-]+$/.test(name))).toBe(true);
  });

  it("answers forward-auth with the owner and environment headers", async () => {
    const response = await send(agora.url, "GET", "/_latchkey/auth", {
      "x-original-uri": "/agents/agent-alice",
      "x-original-method": "PUT",
      ...bearer(alice.token),
    });
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({
      "x-latchkey-owner": "agent-alice",
      "x-latchkey-environment": "prod",
    });
    const other = await send(agora.url, "GET", "/_latchkey/auth", {
      "x-original-uri": "/agents/agent-bob",
      "x-original-method": "PUT",
      ...bearer(alice.token),
    });
    expect(other.status).toBe(403);
    const spoofed = await send(agora.url, "GET", "/_latchkey/auth", {
      "x-original-uri": "/agents/agent-alice",
      "x-original-method": "PUT",
      x_latchkey_owner: "agent-bob",
      ...bearer(alice.token),
    });
    expect(spoofed.status).toBe(400);
  });
});

describe("seed 003: the Trust Gateway is an optional-key route", () => {
  it("forwards a call without a key anonymously, limited per client address by the unverified tier", async () => {
    const first = await send(agora.url, "POST", "/api/proxy/agent-bob", {
      "x-forwarded-for": "198.51.100.20",
    });
    expect(first.status).toBe(200);
    expect(identityOf(first)).toEqual([]);
    const second = await send(agora.url, "POST", "/api/proxy/agent-bob", {
      "x-forwarded-for": "198.51.100.20",
    });
    expect(second.status).toBe(429);
    const elsewhere = await send(agora.url, "POST", "/api/proxy/agent-bob", {
      "x-forwarded-for": "198.51.100.21",
    });
    expect(elsewhere.status).toBe(200);
  });

  it("refuses a key that does not verify with 401, and forwards a valid key with its identity and tier", async () => {
    const bad = await send(
      agora.url,
      "POST",
      "/api/proxy/agent-bob",
      bearer(`${alice.token.slice(0, -1)}${alice.token.endsWith("x") ? "y" : "x"}`),
    );
    expect(bad.status).toBe(401);
    for (let i = 0; i < 3; i += 1) {
      const good = await send(agora.url, "POST", "/api/proxy/agent-bob", {
        ...bearer(alice.token),
        "x-forwarded-for": "198.51.100.20",
      });
      expect(good.status).toBe(200);
      expect(echoed(good).headers["x-latchkey-key-id"]).toBe(alice.id);
    }
  });
});

describe("seed 003: the cron secret during a rotation", () => {
  it("accepts CRON_SECRET and CRON_SECRET_PREVIOUS, and nothing else", async () => {
    expect((await send(agora.url, "POST", "/api/cron/health-check", bearer(CRON))).status).toBe(200);
    expect((await send(agora.url, "POST", "/api/cron/health-check", bearer(CRON_PREVIOUS))).status).toBe(200);
    expect((await send(agora.url, "POST", "/api/cron/health-check", bearer(alice.token))).status).toBe(401);
    expect((await send(agora.url, "GET", "/api/cron/health-check")).status).toBe(401);
  });
});

describe("seed 000: the instance secret from the environment over the file", () => {
  it("uses the file's secret when OPENGRAM_INSTANCE_SECRET is unset", async () => {
    expect((await send(opengramFile.url, "POST", "/api/v1/chats", bearer(FILE_SECRET))).status).toBe(200);
    expect((await send(opengramFile.url, "POST", "/api/v1/chats", bearer(ENV_SECRET))).status).toBe(401);
    expect((await send(opengramFile.url, "GET", "/api/v1/chats")).status).toBe(200);
  });

  it("uses OPENGRAM_INSTANCE_SECRET when set, and no longer the file's", async () => {
    expect((await send(opengramEnv.url, "POST", "/api/v1/chats", bearer(ENV_SECRET))).status).toBe(200);
    expect((await send(opengramEnv.url, "POST", "/api/v1/chats", bearer(FILE_SECRET))).status).toBe(401);
    const stream = await send(opengramEnv.url, "GET", `/api/v1/events/stream?token=${ENV_SECRET}`);
    expect(stream.status).toBe(200);
    expect(echoed(stream).path).toBe("/api/v1/events/stream");
    expect((await send(opengramEnv.url, "GET", "/api/v1/events/stream")).status).toBe(401);
  });
});

describe("environment requirements and rotation windows", () => {
  it("forwards a prod key and refuses a staging key with 403 naming the environment", async () => {
    expect((await send(rotation.url, "GET", "/billing/x", bearer(alice.token))).status).toBe(200);
    const refused = await send(rotation.url, "GET", "/billing/x", bearer(staging.token));
    expect(refused.status).toBe(403);
    expect(errorOf(refused).message).toContain("prod");
    expect((await send(rotation.url, "GET", "/other", bearer(staging.token))).status).toBe(200);
  });

  it("accepts the previous secret within its window and not after it ends", async () => {
    const previous = bearer("hook-secret-previous-0123456789");
    const current = bearer("hook-secret-current-0123456789");
    expect((await send(rotation.url, "POST", "/hooks/open", previous)).status).toBe(200);
    expect((await send(rotation.url, "POST", "/hooks/open", current)).status).toBe(200);
    expect((await send(rotation.url, "POST", "/hooks/closed", previous)).status).toBe(401);
    expect((await send(rotation.url, "POST", "/hooks/closed", current)).status).toBe(200);
    expect(rotation.output()).toMatch(/previousSecretUntil 2020-01-01T00:00:00Z has passed/);
    expect(rotation.output()).not.toContain("hook-secret-previous");
  });
});
