import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { send } from "../../../test/harness/http-client.js";
import { startNginxExample } from "../../../test/harness/nginx.js";
import {
  AMBIGUOUS_PATHS,
  forwardAuthCalls as countForwardAuth,
  expectMissingAndBadKeyRefused,
  expectPublicWithoutIdentity,
  FORGED_HEADER_SETS,
  postAsWriter,
  useForwardAuthFront,
} from "../test-support/forward-auth-cases.js";
import type { EchoedRequest } from "../test-support/sidecar-stack.js";

// The shipped deploy/nginx example, run by Debian's nginx in front of the demo app, asking a sidecar.
const started = useForwardAuthFront(startNginxExample, 180_000);
const forwardAuthCalls = () => countForwardAuth(started.stack);

describe("nginx auth_request with the example config", () => {
  it("lets public routes through without an identity", async () => {
    expectPublicWithoutIdentity(await send(started.url, "GET", "/docs"));
  });

  it("never lets a forged identity, rewrite or method-override header reach the app, cached or not", async () => {
    // A decision cached for the plain request must not serve the same request with these headers.
    expect((await send(started.url, "GET", "/docs/forged")).status).toBe(200);
    const before = started.stack.app.handled();
    for (const headers of FORGED_HEADER_SETS) {
      const response = await send(started.url, "GET", "/docs/forged", headers);
      // The sidecar's 400, passed on by the example's @latchkey_refused (auth_request alone makes it a 500).
      expect(response.status).toBe(400);
      expect(response.json<{ error: { code: string } }>().error.code).toBe("bad_request");
    }
    // Not part of the cache key: refused by the sidecar when it is asked.
    expect(
      (await send(started.url, "GET", "/docs/role", { "X-Latchkey-Role": "owner" })).status,
    ).toBeGreaterThanOrEqual(400);
    expect(started.stack.app.handled()).toBe(before);
  });

  it("keeps a query token out of its access log", async () => {
    const { token } = started.stack.keys.issue({ scopes: ["read"] });
    expect((await send(started.url, "GET", `/docs/logged?token=${token}`)).status).toBeGreaterThanOrEqual(
      400,
    );
    expect((await send(started.url, "GET", `/feed?token=${token}`)).status).toBe(200);
    // Nor does the app get it in its URL: the example takes it out, whatever the spelling of its name.
    for (const [query, seen] of [
      [`token=${token}`, "/feed"],
      [`a=1&token=${token}&b=%2F..`, "/feed?a=1&b=%2F.."],
      [`a=1&%74oken=${token}`, "/feed?a=1"],
      [`tokens=1&atoken=2&token=${token}`, "/feed?tokens=1&atoken=2"],
      [`tok%65n=${token}&z=9`, "/feed?z=9"],
    ] as const) {
      const response = await send(started.url, "GET", `/feed?${query}`);
      expect(response.status).toBe(200);
      expect(response.json<EchoedRequest>().path).toBe(seen);
    }
    // Two `token` parameters: the sidecar refuses, since nginx removes only one.
    expect(
      (await send(started.url, "GET", `/feed?token=${token}&token=${token}`)).status,
    ).toBeGreaterThanOrEqual(400);
    const log = readFileSync(join(started.front.dir, "logs", "access.log"), "utf8");
    expect(log).toContain("/docs/logged");
    expect(log).not.toContain(token);
  });

  it("refuses a missing or bad key with 401 and the sidecar's WWW-Authenticate", async () => {
    await expectMissingAndBadKeyRefused(started.url);
  });

  it("passes a valid key's identity to the app and keeps the credential from it", async () => {
    const { echo } = await postAsWriter(started.url, started.stack);
    expect(echo.headers.authorization).toBeUndefined();
  });

  it("answers 403 for a key without the route's scope", async () => {
    const { token } = started.stack.keys.issue({ scopes: ["write"] });
    const response = await send(started.url, "GET", "/admin/users", { "x-api-key": token });
    expect(response.status).toBe(403);
    const echoApiKey = await send(started.url, "PUT", "/x", { "x-api-key": token }, "");
    expect(echoApiKey.json<EchoedRequest>().headers["x-api-key"]).toBeUndefined();
  });

  it("never lets a path the app reads differently reach it", async () => {
    const before = started.stack.app.handled();
    for (const path of AMBIGUOUS_PATHS) {
      for (const method of ["GET", "POST", "DELETE"]) {
        const response = await send(started.url, method, path, {}, method === "GET" ? undefined : "");
        expect(response.status).toBeGreaterThanOrEqual(400);
      }
    }
    expect(started.stack.app.handled()).toBe(before);
  });

  it("gives the client the sidecar's 429 with Retry-After and RateLimit headers, not nginx's 500", async () => {
    const { token } = started.stack.keys.issue({ scopes: ["read"] });
    const ask = (n: number) =>
      send(started.url, "GET", `/burst?n=${n}`, { authorization: `Bearer ${token}` });
    expect((await ask(1)).status).toBe(200);
    expect((await ask(2)).status).toBe(200);
    const before = started.stack.app.handled();
    const refused = await ask(3);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(refused.headers.ratelimit).toMatch(/"burst";r=0;t=\d+/);
    expect(refused.headers["ratelimit-policy"]).toMatch(/"burst";q=2;w=60/);
    expect(refused.headers["cache-control"]).toBe("no-store");
    const body = refused.json<{ error: { code: string; requestId: string } }>();
    expect(body.error.code).toBe("too_many_requests");
    expect(body.error.requestId).toBe(refused.headers["x-request-id"]);
    expect(body.error.requestId).toMatch(/^[\w-]+$/);
    // A client's own X-Request-Id reaches the JSON and the header only when it looks like an id.
    const forged = await send(started.url, "GET", "/burst?n=4", {
      authorization: `Bearer ${token}`,
      "x-request-id": 'x","code":"ok',
    });
    expect(forged.status).toBe(429);
    expect(forged.json<{ error: { code: string; requestId: string } }>().error).toMatchObject({
      code: "too_many_requests",
      requestId: forged.headers["x-request-id"],
    });
    expect(String(forged.headers["x-request-id"])).toMatch(/^[\w-]+$/);
    // HEAD gets the same refusal and headers, without a body.
    const head = await send(started.url, "HEAD", "/burst?n=5", { authorization: `Bearer ${token}` });
    expect(head.status).toBe(429);
    expect(head.headers["retry-after"]).toBeDefined();
    expect(head.body).toBe("");
    expect(started.stack.app.handled()).toBe(before);
  });

  it("answers 503 with Retry-After when the sidecar cannot decide, and never reaches the app", async () => {
    const { token } = started.stack.keys.issue({ scopes: ["write"] });
    const before = started.stack.app.handled();
    started.stack.keys.down = true;
    try {
      const response = await send(
        started.url,
        "POST",
        "/unavailable",
        { authorization: `Bearer ${token}` },
        "",
      );
      expect(response.status).toBe(503);
      expect(response.headers["retry-after"]).toBe("2");
      expect(response.json<{ error: { code: string } }>().error.code).toBe("unavailable");
    } finally {
      started.stack.keys.down = false;
    }
    expect(started.stack.app.handled()).toBe(before);
    // The app's own 500 is not taken for a refusal: it passes through untouched.
    const { token: writer } = started.stack.keys.issue({ scopes: ["write"] });
    const failing = await send(
      started.url,
      "POST",
      "/failing?status=500",
      { authorization: `Bearer ${writer}` },
      "",
    );
    expect(failing.status).toBe(500);
    expect(failing.headers["retry-after"]).toBeUndefined();
  });

  it("caches decisions: the same key and URI ask the sidecar once", async () => {
    const { token } = started.stack.keys.issue({ scopes: ["write"] });
    const before = forwardAuthCalls();
    for (let i = 0; i < 5; i++) {
      expect(
        (await send(started.url, "POST", "/cached", { authorization: `Bearer ${token}` }, "")).status,
      ).toBe(200);
    }
    expect(forwardAuthCalls() - before).toBe(1);
  });
});
