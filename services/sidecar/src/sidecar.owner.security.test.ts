// Owner-bound routes, environment requirements, optional-key routes and rotating secrets, attacked
// through the sidecar's proxy with a real verifier (its Verify RPC answered in memory).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RawResponse, send } from "../../../test/harness/http-client.js";
import type { EchoedRequest, SidecarStack } from "../test-support/sidecar-stack.js";
import { startSidecarStack } from "../test-support/sidecar-stack.js";

const CURRENT = "cron-secret-current-0123456789";
const PREVIOUS = "cron-secret-previous-0123456789";

let stack: SidecarStack;
let alice: { token: string; key: { id: string } };
let ownerless: { token: string; key: { id: string } };
let staging: { token: string; key: { id: string } };

beforeAll(async () => {
  stack = await startSidecarStack({
    env: { CRON_SECRET: CURRENT, CRON_SECRET_PREVIOUS: PREVIOUS },
    policy: {
      preset: "reads-public",
      rules: [
        {
          name: "agent-edits",
          methods: ["PUT", "PATCH", "DELETE", "POST"],
          paths: ["/agents/{owner}", "/agents/{owner}/**"],
          kind: "key",
          scopes: ["write"],
        },
        { name: "prod-only", path: "/billing/**", kind: "key", environments: ["prod"] },
        { name: "gateway", methods: ["POST"], path: "/proxy/*", kind: "optional-key" },
        {
          name: "cron",
          path: "/cron/**",
          kind: "secret",
          secretEnv: "CRON_SECRET",
          previousSecretEnv: "CRON_SECRET_PREVIOUS",
        },
      ],
    },
  });
  alice = stack.keys.issue({ scopes: ["write"], environment: "prod", owner: "alice" });
  ownerless = stack.keys.issue({ scopes: ["write"], environment: "prod" });
  staging = stack.keys.issue({ scopes: ["write"], environment: "staging", owner: "bob" });
});

afterAll(async () => {
  await stack?.close();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const echoed = (response: RawResponse) => response.json<EchoedRequest>();
const errorOf = (response: RawResponse) =>
  response.json<{ error: { code: string; message: string } }>().error;

describe("a key may change only its own owner's agent", () => {
  it.each(["/agents/alice", "/agents/alice/", "/agents/alice/card", "/agents/%61lice/card", "/AGENTS/alice"])(
    "PUT %s with alice's key is forwarded with her identity",
    async (path) => {
      const response = await send(stack.url, "PUT", path, bearer(alice.token));
      expect(response.status).toBe(200);
      expect(echoed(response).headers["x-latchkey-owner"]).toBe("alice");
      expect(echoed(response).headers["x-latchkey-environment"]).toBe("prod");
    },
  );

  it.each([
    "/agents/bob",
    "/agents/bob/card",
    "/agents/Alice",
    "/agents/ALICE/card",
    "/agents/alice./card",
    "/agents/alice%2e/card",
    "/agents/alice%20",
    "/agents/alice;x/card",
    "/agents/alice;/card",
    "/agents/%C3%A1lice",
    "/agents/alice/../bob",
    "/agents/alice/%2e%2e/bob/card",
    "/agents/./bob",
  ])("PUT %s with alice's key is refused with 403", async (path) => {
    const response = await send(stack.url, "PUT", path, bearer(alice.token));
    expect(response.status).toBe(403);
    expect(errorOf(response)).toMatchObject({ code: "forbidden" });
    expect(errorOf(response).message).toContain("own owner");
  });

  it.each([
    ["/agents/alice%2Fbob", "encoded_separator"],
    ["/agents/alice%5Cbob", "encoded_separator"],
    ["/agents/%2561lice", "double_encoding"],
    ["/agents/alice%3Bx", "encoded_delimiter"],
  ])("PUT %s is refused before any owner check", async (path, reason) => {
    const response = await send(stack.url, "PUT", path, bearer(alice.token));
    expect(response.status).toBe(400);
    expect(errorOf(response).message).toContain(reason);
  });

  it("refuses a key without an owner, and needs a key at all", async () => {
    const response = await send(stack.url, "DELETE", "/agents/alice", bearer(ownerless.token));
    expect(response.status).toBe(403);
    expect((await send(stack.url, "DELETE", "/agents/alice")).status).toBe(401);
    // Reads stay public (the preset), whoever the agent.
    expect((await send(stack.url, "GET", "/agents/bob")).status).toBe(200);
  });

  it("logs the refusal as wrong_owner with the key's id", async () => {
    await send(stack.url, "PATCH", "/agents/bob", bearer(alice.token));
    const line = stack.logLines.findLast((entry) => entry.path === "/agents/bob" && entry.method === "PATCH");
    expect(line).toMatchObject({ decision: "wrong_owner", status: 403, keyId: alice.key.id });
  });
});

describe("a route that requires an environment", () => {
  it("forwards a prod key and refuses a staging key with 403 naming the accepted environment", async () => {
    expect((await send(stack.url, "GET", "/billing/invoices", bearer(alice.token))).status).toBe(200);
    const refused = await send(stack.url, "GET", "/billing/invoices", bearer(staging.token));
    expect(refused.status).toBe(403);
    expect(errorOf(refused).message).toContain("prod");
  });
});

describe("an optional-key route", () => {
  it("forwards a request without a credential anonymously, without identity headers", async () => {
    const response = await send(stack.url, "POST", "/proxy/agent-1", {
      "x-latchkey-owner": "alice",
      "x-latchkey-key-id": "key_forged",
    });
    expect(response.status).toBe(200);
    const names = Object.keys(echoed(response).headers).filter((name) => name.startsWith("x-latchkey-"));
    expect(names).toEqual([]);
  });

  it("refuses a credential that does not verify, and forwards one that does with its identity", async () => {
    const bad = await send(stack.url, "POST", "/proxy/agent-1", bearer("lk_test_notakey"));
    expect(bad.status).toBe(401);
    const empty = await send(stack.url, "POST", "/proxy/agent-1", { authorization: "Bearer " });
    expect(empty.status).toBe(401);
    const conflict = await send(stack.url, "POST", "/proxy/agent-1", {
      ...bearer(alice.token),
      "x-api-key": staging.token,
    });
    expect(conflict.status).toBe(400);
    const good = await send(stack.url, "POST", "/proxy/agent-1", bearer(alice.token));
    expect(good.status).toBe(200);
    expect(echoed(good).headers["x-latchkey-key-id"]).toBe(alice.key.id);
  });
});

describe("spoofed owner and environment headers", () => {
  it.each([
    "x-latchkey-owner",
    "X-Latchkey-Owner",
    "x_latchkey_owner",
    "x.latchkey.owner",
    "x-latchkey_owner",
    "x-latchkey-environment",
    "x_latchkey_environment",
    "X.Latchkey.Environment",
  ])("%s from the client never reaches the app", async (name) => {
    for (const [method, path, headers] of [
      ["GET", "/agents/bob", {}],
      ["PUT", "/agents/alice", bearer(alice.token)],
      ["POST", "/proxy/x", {}],
    ] as const) {
      const response = await send(stack.url, method, path, { ...headers, [name]: "bob" });
      expect(response.status).toBe(200);
      for (const [header, value] of Object.entries(echoed(response).headers)) {
        if (!header.replace(/[_.]/g, "-").startsWith("x-latchkey-")) continue;
        // Only the sidecar's own spelling reaches the app, with the key's values.
        expect(header).toMatch(/^x-latchkey-[a-z-]+$/);
        expect(value).not.toBe("bob");
      }
    }
  });
});

describe("a secret rule during a rotation", () => {
  it("accepts the current and the previous secret, and nothing else", async () => {
    expect((await send(stack.url, "POST", "/cron/run", bearer(CURRENT))).status).toBe(200);
    expect((await send(stack.url, "POST", "/cron/run", bearer(PREVIOUS))).status).toBe(200);
    expect((await send(stack.url, "POST", "/cron/run", bearer(`${CURRENT}x`))).status).toBe(401);
    expect((await send(stack.url, "POST", "/cron/run", bearer(CURRENT.slice(0, -1)))).status).toBe(401);
  });
});
