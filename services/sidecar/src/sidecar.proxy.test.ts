import { Readable } from "node:stream";
import { request as undiciRequest } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RawResponse, send } from "../../../test/harness/http-client.js";
import { type EchoedRequest, type SidecarStack, startSidecarStack } from "../test-support/sidecar-stack.js";

const echoed = (response: RawResponse) => response.json<EchoedRequest>();
const errorOf = (response: RawResponse) =>
  response.json<{ error: { code: string; message: string; requestId: string } }>().error;

async function metric(stack: SidecarStack, line: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${stack.sidecar.adminPort}/metrics`)).text();
  const found = text.split("\n").find((candidate) => candidate.startsWith(`${line} `));
  return Number(found?.split(" ")[1] ?? Number.NaN);
}

describe("enforce mode", () => {
  let stack: SidecarStack;
  beforeAll(async () => {
    stack = await startSidecarStack({
      policy: {
        preset: "reads-public",
        rules: [
          { path: "/chats/**", methods: ["POST"], kind: "key", scopes: ["chats:write"] },
          { path: "/pass/**", kind: "key", passCredential: true },
        ],
      },
    });
  });
  afterAll(() => stack?.close());

  it("answers 403 insufficient_scope naming the route's scopes", async () => {
    const { token } = stack.keys.issue({ scopes: ["write"] });
    const response = await send(stack.url, "POST", "/chats/1", { authorization: `Bearer ${token}` });
    expect(response.status).toBe(403);
    expect(response.headers["www-authenticate"]).toBe(
      'Bearer realm="latchkey", error="insufficient_scope", scope="chats:write"',
    );
    expect(errorOf(response)).toMatchObject({ code: "insufficient_scope" });
    const allowed = stack.keys.issue({ scopes: ["chats:write"] });
    expect(
      (await send(stack.url, "POST", "/chats/1", { authorization: `Bearer ${allowed.token}` })).status,
    ).toBe(200);
  });

  it("answers 401 without an error parameter when no credential was sent (RFC 6750 §3.1)", async () => {
    const response = await send(stack.url, "DELETE", "/x");
    expect(response.status).toBe(401);
    expect(response.headers["www-authenticate"]).toBe('Bearer realm="latchkey"');
    const body = errorOf(response);
    expect(body.code).toBe("unauthenticated");
    expect(body.requestId).toBe(response.headers["x-request-id"]);
  });

  it("keeps an inbound request id and uses it upstream", async () => {
    const { token } = stack.keys.issue({ scopes: ["write"] });
    const response = await send(stack.url, "PUT", "/x", {
      authorization: `Bearer ${token}`,
      "x-request-id": "req-123",
    });
    expect(echoed(response).headers["x-request-id"]).toBe("req-123");
  });

  it("answers 429 with Retry-After when the key is rate limited", async () => {
    const { token } = stack.keys.issue({ scopes: ["write"] });
    stack.keys.rateLimited = true;
    try {
      const response = await send(stack.url, "POST", "/x", { authorization: `Bearer ${token}` });
      expect(response.status).toBe(429);
      expect(Number(response.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(errorOf(response).code).toBe("rate_limited");
    } finally {
      stack.keys.rateLimited = false;
    }
  });

  it("fails closed with 503 and Retry-After when the token-service cannot be reached", async () => {
    const { token } = stack.keys.issue({ scopes: ["write"] });
    stack.keys.down = true;
    try {
      const response = await send(stack.url, "POST", "/x", { authorization: `Bearer ${token}` });
      expect(response.status).toBe(503);
      expect(response.headers["retry-after"]).toBeDefined();
      expect(errorOf(response).code).toBe("unavailable");
      expect(
        await metric(stack, 'latchkey_sidecar_decisions_total{decision="unavailable",mode="enforce"}'),
      ).toBe(1);
    } finally {
      stack.keys.down = false;
    }
  });

  it("passes the credential on routes that say so", async () => {
    const { token } = stack.keys.issue({ scopes: ["read"] });
    const response = echoed(await send(stack.url, "GET", "/pass/x", { authorization: `Bearer ${token}` }));
    expect(response.headers.authorization).toBe(`Bearer ${token}`);
  });

  it("streams request bodies through (chunked, 4 MiB)", async () => {
    const { token } = stack.keys.issue({ scopes: ["write"] });
    const chunk = Buffer.alloc(64 * 1024, 1);
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < 64; i++) yield chunk;
      })(),
    );
    const response = await undiciRequest(`${stack.url}/upload`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body,
    });
    const echo = (await response.body.json()) as EchoedRequest;
    expect(response.statusCode).toBe(200);
    expect(echo.bodyBytes).toBe(64 * chunk.length);
    expect(echo.headers["transfer-encoding"]).toBe("chunked");
  });

  it("counts decisions per outcome", async () => {
    const before = await metric(stack, 'latchkey_sidecar_decisions_total{decision="public",mode="enforce"}');
    await send(stack.url, "GET", "/anything");
    expect(await metric(stack, 'latchkey_sidecar_decisions_total{decision="public",mode="enforce"}')).toBe(
      before + 1,
    );
  });

  it("serves /healthz, /readyz and /metrics on the admin listener", async () => {
    const admin = `http://127.0.0.1:${stack.sidecar.adminPort}`;
    expect((await fetch(`${admin}/healthz`)).status).toBe(200);
    expect((await fetch(`${admin}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${admin}/metrics`)).text()).toContain("latchkey_sidecar_decisions_total");
  });
});

describe("log mode", () => {
  let stack: SidecarStack;
  beforeAll(async () => {
    stack = await startSidecarStack({ config: { enforcement: "log" } });
  });
  afterAll(() => stack?.close());

  it("forwards refused requests without an identity, and counts and logs what enforce would do", async () => {
    const response = await send(stack.url, "GET", "/x", { "x-latchkey-key-id": "key_forged" });
    expect(response.status).toBe(200);
    expect(echoed(response).headers["x-latchkey-key-id"]).toBeUndefined();
    expect(await metric(stack, 'latchkey_sidecar_decisions_total{decision="no_credential",mode="log"}')).toBe(
      1,
    );
    expect(stack.logLines.at(-1)).toMatchObject({ decision: "no_credential", status: 200, wouldRefuse: 401 });
  });

  it("still passes the identity of a valid key", async () => {
    const { token, key } = stack.keys.issue({ scopes: ["read"] });
    const response = echoed(await send(stack.url, "GET", "/x", { authorization: `Bearer ${token}` }));
    expect(response.headers["x-latchkey-key-id"]).toBe(key.id);
    expect(response.headers.authorization).toBeUndefined();
  });

  it("forwards even when the token-service is down", async () => {
    const { token } = stack.keys.issue({ scopes: ["read"] });
    stack.keys.down = true;
    try {
      const response = await send(stack.url, "GET", "/x", { authorization: `Bearer ${token}` });
      expect(response.status).toBe(200);
      expect(echoed(response).headers["x-latchkey-key-id"]).toBeUndefined();
    } finally {
      stack.keys.down = false;
    }
  });
});

describe("disabled mode", () => {
  let stack: SidecarStack;
  beforeAll(async () => {
    stack = await startSidecarStack({ config: { enforcement: "disabled" } });
  });
  afterAll(() => stack?.close());

  it("forwards everything unchecked, still stripping forged identity headers", async () => {
    const before = stack.keys.calls;
    const response = await send(stack.url, "GET", "/x/../y?token=abc", {
      authorization: "Bearer whatever",
      "x-latchkey-key-id": "key_forged",
    });
    expect(response.status).toBe(200);
    const echo = echoed(response);
    expect(echo.path).toBe("/x/../y?token=abc");
    expect(echo.headers.authorization).toBe("Bearer whatever");
    expect(echo.headers["x-latchkey-key-id"]).toBeUndefined();
    expect(stack.keys.calls).toBe(before);
    expect(
      await metric(stack, 'latchkey_sidecar_decisions_total{decision="not_checked",mode="disabled"}'),
    ).toBe(1);
  });
});

describe("upstream", () => {
  it("prefixes the upstream URL's path and answers 502 when the upstream is gone", async () => {
    const stack = await startSidecarStack({ policy: { default: { kind: "public" } } });
    try {
      const prefixed = await startSidecarStack({
        policy: { default: { kind: "public" } },
        config: { upstream: `http://127.0.0.1:${stack.app.port}/base/` },
      });
      try {
        expect(echoed(await send(prefixed.url, "GET", "/x?y=1")).path).toBe("/base/x?y=1");
      } finally {
        await prefixed.close();
      }
      await stack.app.close();
      const response = await send(stack.url, "GET", "/x");
      expect(response.status).toBe(502);
      expect(errorOf(response).code).toBe("bad_gateway");
    } finally {
      await stack.close();
    }
  });
});
