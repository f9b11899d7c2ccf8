import { describe, expect, it } from "vitest";
import { send } from "../../../test/harness/http-client.js";
import { startTraefikForwardAuthShape } from "../../../test/harness/traefik-forward-auth.js";
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

// The shipped deploy/traefik example in front of the demo app, asking a sidecar: the cases of
// nginx-auth-request.test.ts. Traefik cannot be installed here, so the front is the recorded
// request shape of Traefik v3's entry point and ForwardAuth (test/harness/traefik-forward-auth.ts).
const started = useForwardAuthFront(startTraefikForwardAuthShape, 60_000);
const forwardAuthCalls = () => countForwardAuth(started.stack);

describe("Traefik ForwardAuth with the example config (recorded request shape)", () => {
  it("lets public routes through without an identity", async () => {
    expectPublicWithoutIdentity(await send(started.url, "GET", "/docs"));
  });

  it("asks the sidecar with Traefik's headers: the request's method and URI, never the client's", async () => {
    const before = started.front.authRequests.length;
    const response = await send(started.url, "POST", "/admin/users?x=1", {
      "X-Forwarded-Uri": "/docs",
      "X-Forwarded-Method": "GET",
      x_forwarded_uri: "/docs",
      "Content-Length": "0",
    });
    // Judged as the POST to /admin/users it is, not as the public GET the client named.
    expect(response.status).toBe(401);
    const [asked] = started.front.authRequests.slice(before);
    expect(asked?.method).toBe("GET");
    expect(asked?.path).toBe("/_latchkey/auth");
    const headers = Object.fromEntries(asked?.headers ?? []);
    expect(headers).toMatchObject({
      "X-Forwarded-Method": "POST",
      "X-Forwarded-Uri": "/admin/users?x=1",
      "X-Forwarded-Proto": "http",
      "X-Forwarded-For": "127.0.0.1",
    });
    expect(headers["Content-Length"]).toBeUndefined();
    expect(headers.X_forwarded_uri).toBeUndefined();
    const names = asked?.headers.map(([name]) => name) ?? [];
    expect(names).toEqual([...names].sort());
  });

  it("never lets a forged identity, rewrite or method-override header reach the app", async () => {
    expect((await send(started.url, "GET", "/docs/forged")).status).toBe(200);
    const before = started.stack.app.handled();
    for (const headers of [
      ...FORGED_HEADER_SETS,
      { "X-Latchkey-Role": "owner" },
      { x_latchkey_team_id: "team_other" },
      // nginx's name for the URI, which Traefik passes on: it contradicts Traefik's X-Forwarded-Uri.
      { "X-Original-URI": "/admin/users" },
    ]) {
      const response = await send(started.url, "GET", "/docs/forged", headers);
      // Traefik hands the sidecar's refusal to the client as it is.
      expect(response.status, JSON.stringify(headers)).toBe(400);
      expect(response.json<{ error: { code: string } }>().error.code).toBe("invalid_request");
    }
    expect(started.stack.app.handled()).toBe(before);
  });

  it("refuses every `?token=` on the forward-auth path, since Traefik would pass it to the app", async () => {
    const { token } = started.stack.keys.issue({ scopes: ["read"] });
    const before = started.stack.app.handled();
    for (const query of [`token=${token}`, `a=1&%74oken=${token}`, `tok%65n=${token}&z=9`]) {
      for (const path of ["/feed", "/docs"]) {
        const response = await send(started.url, "GET", `${path}?${query}`);
        expect(response.status, `${path}?${query}`).toBe(400);
        expect(response.body).not.toContain(token);
      }
    }
    expect(started.stack.app.handled()).toBe(before);
  });

  it("sends event streams to the sidecar's proxy, which takes the token out of the URL", async () => {
    const { token } = started.stack.keys.issue({ scopes: ["read"] });
    const calls = forwardAuthCalls();
    const response = await send(started.url, "GET", `/feed?a=1&token=${token}`, {
      accept: "text/event-stream",
    });
    expect(response.status).toBe(200);
    const echo = response.json<EchoedRequest>();
    expect(echo.path).toBe("/feed?a=1");
    expect(echo.headers["x-latchkey-scopes"]).toBe("read");
    expect(forwardAuthCalls()).toBe(calls);
    // Without a key, the proxy refuses it itself.
    expect((await send(started.url, "GET", "/feed", { accept: "text/event-stream" })).status).toBe(401);
  });

  it("refuses a missing or bad key with 401, the sidecar's WWW-Authenticate and its JSON body", async () => {
    await expectMissingAndBadKeyRefused(started.url);
    expect(
      (await send(started.url, "POST", "/chats", {}, "{}")).json<{ error: { code: string } }>().error.code,
    ).toBe("unauthenticated");
  });

  it("passes a valid key's identity to the app; the credential goes too (Traefik cannot remove it)", async () => {
    const { echo, token } = await postAsWriter(started.url, started.stack);
    expect(echo.headers.authorization).toBe(`Bearer ${token}`);
  });

  it("answers 403 for a key without the route's scope", async () => {
    const { token } = started.stack.keys.issue({ scopes: ["write"] });
    const response = await send(started.url, "GET", "/admin/users", { "x-api-key": token });
    expect(response.status).toBe(403);
    expect(response.headers["www-authenticate"]).toMatch(/insufficient_scope/);
  });

  it("never lets a path the app reads differently reach it: Traefik cleans it first, or the sidecar refuses it", async () => {
    const before = started.stack.app.handled();
    for (const path of [...AMBIGUOUS_PATHS, "/docs/%2E%2E/admin/users", "/./admin/users"]) {
      for (const method of ["GET", "POST", "DELETE"]) {
        const response = await send(started.url, method, path, {}, method === "GET" ? undefined : "");
        expect(response.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      }
    }
    expect(started.stack.app.handled()).toBe(before);
    // With a key, the app gets the path that was decided on, as Traefik cleaned it.
    const { token } = started.stack.keys.issue({ scopes: ["admin"] });
    const response = await send(started.url, "GET", "/docs/%2e%2e//admin/./users", {
      authorization: `Bearer ${token}`,
    });
    expect(response.status).toBe(200);
    expect(response.json<EchoedRequest>().path).toBe("/admin/users");
  });

  it("has no decision cache: every request asks the sidecar", async () => {
    const { token } = started.stack.keys.issue({ scopes: ["write"] });
    const before = forwardAuthCalls();
    for (let i = 0; i < 5; i++) {
      expect(
        (await send(started.url, "POST", "/cached", { authorization: `Bearer ${token}` }, "")).status,
      ).toBe(200);
    }
    await expect.poll(() => forwardAuthCalls() - before).toBe(5);
  });
});
