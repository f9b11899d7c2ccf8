import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send } from "../../../test/harness/http-client.js";
import { type SidecarStack, startSidecarStack } from "../test-support/sidecar-stack.js";
import { FORWARD_AUTH_PATH } from "./forward-auth.js";

/** The original method is required; these checks describe GETs unless they say otherwise. */
function withMethod(headers: Record<string, string>): Record<string, string> {
  return "x-original-method" in headers || "x-forwarded-method" in headers
    ? headers
    : { ...headers, "x-original-method": "GET" };
}

const POLICY = {
  preset: "reads-public",
  rules: [
    { path: "/admin/**", kind: "key", scopes: ["admin"] },
    { path: "/events", kind: "key", scopes: ["read"], allowQueryToken: true },
  ],
};

describe("forward-auth from a trusted proxy", () => {
  let stack: SidecarStack;
  beforeAll(async () => {
    stack = await startSidecarStack({ policy: POLICY });
  });
  afterAll(() => stack?.close());

  const check = (headers: Record<string, string>) =>
    send(stack.url, "GET", FORWARD_AUTH_PATH, withMethod(headers));

  it("answers 200 with the identity headers for an allowed key (nginx headers)", async () => {
    const { token, key } = stack.keys.issue({ scopes: ["admin"], name: "ops" });
    const response = await check({
      "x-original-uri": "/admin/users?page=2",
      "x-original-method": "DELETE",
      authorization: `Bearer ${token}`,
    });
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({
      "x-latchkey-key-id": key.id,
      "x-latchkey-team-id": "team_demo",
      "x-latchkey-scopes": "admin",
      "x-latchkey-key-name": "ops",
      "cache-control": "no-store",
    });
    expect(response.body).toBe("");
  });

  it("decides on the method and URI of Traefik's X-Forwarded-* headers", async () => {
    const { token } = stack.keys.issue({ scopes: ["read"] });
    const read = await check({ "x-forwarded-uri": "/anything", "x-forwarded-method": "GET" });
    expect(read.status).toBe(200);
    expect(read.headers["x-latchkey-key-id"]).toBeUndefined();
    const write = await check({
      "x-forwarded-uri": "/anything",
      "x-forwarded-method": "POST",
      "x-api-key": token,
    });
    expect(write.status).toBe(403);
    expect(write.headers["www-authenticate"]).toContain('error="insufficient_scope", scope="write"');
  });

  it("answers 401 with the proxy's body and header", async () => {
    const none = await check({ "x-original-uri": "/admin/x", "x-original-method": "GET" });
    expect(none.status).toBe(401);
    expect(none.headers["www-authenticate"]).toBe('Bearer realm="latchkey"');
    expect(none.json()).toMatchObject({ error: { code: "unauthenticated" } });
    const bad = await check({ "x-original-uri": "/admin/x", authorization: "Bearer lk_test_nope" });
    expect(bad.status).toBe(401);
    expect(bad.headers["www-authenticate"]).toBe('Bearer realm="latchkey", error="invalid_token"');
    const encoded = await check({ "x-original-uri": "/public%2F..%2Fadmin" });
    expect(encoded.status).toBe(400);
  });

  // nginx and Traefik send the app the URI as the client wrote it, so the decision must be on that URI.
  it.each([
    "/public/../admin/x",
    "/admin/../x",
    "/x/..;/admin",
    "/%2e%2e/admin",
    "/.%2e/admin",
    "/x/../..",
    "/./x",
    "//admin",
    "/x//y",
    "/admin;x=1/users",
    "/x;/admin",
    "/%61dmin/x",
    "/%7Euser",
    "/;/admin/users",
    "/%3B/admin/users",
  ])("refuses %s, which the app would read differently from its canonical form", async (uri) => {
    for (const method of ["GET", "POST", "DELETE"]) {
      const response = await check({ "x-original-uri": uri, "x-original-method": method });
      expect(response.status).toBe(400);
      expect(response.json()).toMatchObject({ error: { code: "invalid_request" } });
    }
  });

  it("accepts canonical URIs, percent-escapes in either case included", async () => {
    for (const uri of ["/x", "/caf%C3%A9/a%20b", "/caf%c3%a9", "/x/?q=/../admin", "/"]) {
      expect((await check({ "x-original-uri": uri })).status).toBe(200);
    }
  });

  it.each([
    ["x-latchkey-key-id", "key_forged"],
    ["x_latchkey_scopes", "admin"],
    ["X-Latchkey-Role", "owner"],
    ["x-http-method-override", "DELETE"],
    ["x-method-override", "DELETE"],
    ["x-original-url", "/admin/users"],
    ["x-rewrite-url", "/admin/users"],
    ["x_forwarded_for", "10.0.0.1"],
  ])("refuses a request carrying %s, which the proxy in front would pass to the app", async (name, value) => {
    const response = await check({ "x-original-uri": "/public", [name]: value });
    expect(response.status).toBe(400);
    expect(response.json()).toMatchObject({ error: { code: "invalid_request" } });
  });

  it("refuses ?token= on a route that does not take it, since the app would get it in its URL", async () => {
    const { token } = stack.keys.issue({ scopes: ["admin"] });
    const onPublic = await check({ "x-original-uri": `/public?token=${token}` });
    expect(onPublic.status).toBe(400);
    const onKeyRoute = await check({
      "x-original-uri": `/admin/users?%74oken=${token}`,
      authorization: `Bearer ${token}`,
    });
    expect(onKeyRoute.status).toBe(400);
  });

  it("takes ?token= from the original URI on routes that allow it", async () => {
    const { token, key } = stack.keys.issue({ scopes: ["read"] });
    const response = await check({ "x-original-uri": `/events?token=${token}` });
    expect(response.status).toBe(200);
    expect(response.headers["x-latchkey-key-id"]).toBe(key.id);
  });

  it("needs an original URI", async () => {
    const response = await check({});
    expect(response.status).toBe(400);
    expect(response.json()).toMatchObject({ error: { code: "invalid_request" } });
  });

  it("is an exact path: anything beside it is proxied under the policy", async () => {
    const response = await send(stack.url, "GET", `${FORWARD_AUTH_PATH}/x`);
    expect(response.status).toBe(200);
    expect(response.json()).toMatchObject({ path: `${FORWARD_AUTH_PATH}/x` });
  });
});

describe("forward-auth from an untrusted peer", () => {
  let stack: SidecarStack;
  beforeAll(async () => {
    stack = await startSidecarStack({
      policy: POLICY,
      config: { trustedProxies: "10.1.2.3,192.168.0.0/16" },
    });
  });
  afterAll(() => stack?.close());

  it("refuses to believe X-Original-URI", async () => {
    const response = await send(
      stack.url,
      "GET",
      FORWARD_AUTH_PATH,
      withMethod({ "x-original-uri": "/public" }),
    );
    expect(response.status).toBe(403);
    expect(response.json()).toMatchObject({ error: { code: "forbidden" } });
  });

  it("replaces the X-Forwarded-For an untrusted client sent", async () => {
    const response = await send(stack.url, "GET", "/public/x", {
      "x-forwarded-for": "203.0.113.9",
      "x-forwarded-proto": "https",
    });
    const echo = response.json<{ headers: Record<string, string> }>();
    expect(echo.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(echo.headers["x-forwarded-proto"]).toBe("http");
  });
});

describe("forward-auth in log mode", () => {
  let stack: SidecarStack;
  beforeAll(async () => {
    stack = await startSidecarStack({ policy: POLICY, config: { enforcement: "log" } });
  });
  afterAll(() => stack?.close());

  it("answers 200 without identity for what enforce would refuse", async () => {
    const response = await send(
      stack.url,
      "GET",
      FORWARD_AUTH_PATH,
      withMethod({ "x-original-uri": "/admin/x" }),
    );
    expect(response.status).toBe(200);
    expect(response.headers["x-latchkey-key-id"]).toBeUndefined();
  });
});

describe("forward-auth refuses an incomplete or contradictory description", () => {
  let stack: SidecarStack;
  beforeAll(async () => {
    stack = await startSidecarStack({ policy: POLICY });
  });
  afterAll(() => stack?.close());

  it("needs the original method: a missing one is not taken for a public GET", async () => {
    const response = await send(stack.url, "GET", FORWARD_AUTH_PATH, { "x-original-uri": "/orders" });
    expect(response.status).toBe(400);
    expect(response.body).toContain("X-Original-Method");
    const garbage = await send(stack.url, "GET", FORWARD_AUTH_PATH, {
      "x-original-uri": "/orders",
      "x-original-method": "GET /admin",
    });
    expect(garbage.status).toBe(400);
  });

  it("refuses X-Original-* and X-Forwarded-* that describe different requests", async () => {
    const method = await send(stack.url, "GET", FORWARD_AUTH_PATH, {
      "x-original-uri": "/orders",
      "x-original-method": "POST",
      "x-forwarded-method": "GET",
    });
    expect(method.status).toBe(400);
    const uri = await send(stack.url, "GET", FORWARD_AUTH_PATH, {
      "x-original-uri": "/admin/x",
      "x-forwarded-uri": "/public",
      "x-original-method": "GET",
    });
    expect(uri.status).toBe(400);
    const agreeing = await send(stack.url, "GET", FORWARD_AUTH_PATH, {
      "x-original-uri": "/public",
      "x-forwarded-uri": "/public",
      "x-original-method": "GET",
    });
    expect(agreeing.status).toBe(200);
  });
});
