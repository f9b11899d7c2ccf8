import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RawResponse, send, sendRaw } from "../../../test/harness/http-client.js";
import type { EchoedRequest, SidecarStack } from "../test-support/sidecar-stack.js";
import { startSidecarStack } from "../test-support/sidecar-stack.js";

const SECRET = "instance-secret-0123456789";

let stack: SidecarStack;
let reader: { token: string; key: { id: string } };

beforeAll(async () => {
  stack = await startSidecarStack({
    env: { INSTANCE_SECRET: SECRET },
    policy: {
      preset: "reads-public",
      rules: [
        { name: "admin", path: "/admin/**", kind: "key", scopes: ["admin"] },
        { name: "private", path: "/private/**", kind: "key", scopes: ["read"] },
        { name: "feed", path: "/feed", kind: "key", scopes: ["read"], allowQueryToken: true },
        { name: "instance", path: "/instance/**", kind: "secret", secretEnv: "INSTANCE_SECRET" },
        {
          name: "stream",
          methods: ["GET"],
          path: "/stream",
          kind: "key",
          scopes: ["read"],
          allowQueryToken: true,
        },
        { name: "rpc", path: "/rpc/**", kind: "key", scopes: ["read"], passMethodOverride: true },
        {
          name: "rpc-post",
          methods: ["POST"],
          path: "/rpc-post",
          kind: "key",
          scopes: ["read"],
          passMethodOverride: true,
        },
        { name: "reset", path: "/reset/**", kind: "public", keepQueryToken: true },
      ],
    },
  });
  reader = stack.keys.issue({ scopes: ["read"] });
});

afterAll(async () => {
  await stack?.close();
});

const get = (path: string, headers: Record<string, string | string[]> = {}) =>
  send(stack.url, "GET", path, headers);
const echoed = (response: RawResponse) => response.json<EchoedRequest>();
const errorOf = (response: RawResponse) =>
  response.json<{ error: { code: string; message: string } }>().error;

describe("paths that try to reach a private route through a public one", () => {
  it.each([
    "/public/../admin/users",
    "/public/%2e%2e/admin/users",
    "/public/%2E%2e/admin/users",
    "/public/..;/admin/users",
    "//admin//users",
    "/./admin/users",
    "/ADMIN/users",
    "/Admin/Users",
    "/admin;x=1/users",
    "/%61dmin/users",
    "/admin/",
    "/admin",
  ])("%s is matched as the admin route", async (path) => {
    const response = await get(path);
    expect(response.status).toBe(401);
  });

  it.each([
    ["/public%2F..%2Fadmin", "encoded_separator"],
    ["/public%5C..%5Cadmin", "encoded_separator"],
    ["/public/%252e%252e/admin", "double_encoding"],
    ["/public\\..\\admin", "backslash"],
    ["/public/%00/../admin", "nul"],
    ["/public/%C0%AE%C0%AE/admin", "invalid_utf8"],
    ["/;/admin/users", "parameter_only_segment"],
    ["/;x=1/admin/users", "parameter_only_segment"],
    ["/%3B/admin/users", "encoded_delimiter"],
    ["/admin%3bx/users", "encoded_delimiter"],
  ])("%s is refused with 400", async (path, reason) => {
    const response = await get(path);
    expect(response.status).toBe(400);
    expect(errorOf(response)).toMatchObject({ code: "invalid_request" });
    expect(errorOf(response).message).toContain(reason);
  });

  it("forwards the path it matched, not the one it was sent", async () => {
    const response = await get("/public/./a/../b//c", {});
    expect(response.status).toBe(200);
    expect(echoed(response).path).toBe("/public/b/c");
    const encoded = await get("/caf%C3%A9/%7Euser?q=%2F..%2F");
    expect(echoed(encoded).path).toBe("/caf%C3%A9/~user?q=%2F..%2F");
  });

  it("refuses raw non-ASCII bytes in the path", async () => {
    const raw = await sendRaw(stack.url, Buffer.from("GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n", "latin1"));
    expect(raw).toMatch(/^HTTP\/1\.1 400/);
  });
});

describe("the query string never takes part in matching", () => {
  it("a private path with a query that looks like a public path stays private", async () => {
    expect((await send(stack.url, "GET", "/private/data?/public/x")).status).toBe(401);
    expect((await send(stack.url, "GET", "/private/data?x=/../public")).status).toBe(401);
  });

  it("a public path with a query that looks like a private path stays public", async () => {
    const response = await get("/public/x?/admin/users");
    expect(response.status).toBe(200);
    expect(echoed(response).path).toBe("/public/x?/admin/users");
  });
});

describe("credentials", () => {
  it("accepts Bearer in any case and X-API-Key", async () => {
    for (const headers of <Array<Record<string, string | string[]>>>[
      { authorization: `Bearer ${reader.token}` },
      { authorization: `bearer ${reader.token}` },
      { authorization: `BEARER   ${reader.token}` },
      { "x-api-key": reader.token },
    ]) {
      const response = await get("/private/x", headers);
      expect(response.status).toBe(200);
      expect(echoed(response).headers["x-latchkey-key-id"]).toBe(reader.key.id);
    }
  });

  it("takes ?token= only where the route allows it, and removes it before forwarding", async () => {
    const allowed = await get(`/feed?a=1&token=${reader.token}&x=2`);
    expect(allowed.status).toBe(200);
    expect(echoed(allowed).path).toBe("/feed?a=1&x=2");
    expect(echoed(allowed).headers["x-latchkey-key-id"]).toBe(reader.key.id);
    const encodedName = await get(`/feed?%74oken=${reader.token}`);
    expect(echoed(encodedName).path).toBe("/feed");
    const notAllowed = await get(`/private/x?token=${reader.token}`);
    expect(notAllowed.status).toBe(401);
    expect(notAllowed.headers["www-authenticate"]).toBe('Bearer realm="latchkey"');
  });

  it("refuses two different credentials in one request", async () => {
    const other = stack.keys.issue({ scopes: ["read"] });
    for (const headers of <Array<Record<string, string | string[]>>>[
      { authorization: `Bearer ${reader.token}`, "x-api-key": other.token },
      { authorization: [`Bearer ${reader.token}`, `Bearer ${other.token}`] },
      { "x-api-key": [reader.token, other.token] },
    ]) {
      const response = await get("/private/x", headers);
      expect(response.status).toBe(400);
      expect(response.headers["www-authenticate"]).toBe('Bearer realm="latchkey", error="invalid_request"');
    }
    const query = await get(`/feed?token=${other.token}`, { authorization: `Bearer ${reader.token}` });
    expect(query.status).toBe(400);
    // The same credential twice is one credential.
    const same = await get("/private/x", {
      authorization: `Bearer ${reader.token}`,
      "x-api-key": reader.token,
    });
    expect(same.status).toBe(200);
  });

  it("refuses oversized and non-UTF-8 credentials without asking the token-service", async () => {
    const before = stack.keys.calls;
    for (const headers of <Array<Record<string, string | string[]>>>[
      { "x-api-key": `lk_live_${"a".repeat(600)}` },
      { authorization: `Bearer ${"x".repeat(513)}` },
      { "x-api-key": Buffer.from("lk_live_\xff\xfe\xfd", "latin1").toString("latin1") },
      { "x-api-key": "lk_live_caf\xe9" },
      { "x-api-key": "lk live with spaces" },
      { authorization: "Bearer" },
    ]) {
      const response = await get("/private/x", headers);
      expect(response.status).toBe(401);
      expect(response.headers["www-authenticate"]).toBe('Bearer realm="latchkey", error="invalid_token"');
    }
    for (const query of ["%FF%FE", "%E9", "a%zz", `${"A".repeat(2000)}`]) {
      const response = await get(`/feed?token=${query}`);
      expect(response.status).toBe(401);
    }
    expect(stack.keys.calls).toBe(before);
  });

  it("answers every failing key with the same 401, so none reveals whether a key exists", async () => {
    const revoked = stack.keys.issue({ scopes: ["read"] });
    await stack.keys.revoke(revoked.key as never);
    const unknown = stack.keys.issue({ scopes: ["read"] });
    stack.keys.revokeSilently(unknown.key as never);
    const bodies = new Set<string>();
    for (const token of [
      revoked.token,
      "lk_test_notakey",
      `${reader.token.slice(0, -1)}${reader.token.endsWith("x") ? "y" : "x"}`,
      unknown.token,
    ]) {
      const response = await get("/private/x", { authorization: `Bearer ${token}` });
      expect(response.status).toBe(401);
      expect(response.headers["www-authenticate"]).toBe('Bearer realm="latchkey", error="invalid_token"');
      const { code, message } = errorOf(response);
      bodies.add(JSON.stringify({ code, message }));
    }
    expect(bodies.size).toBe(1);
  });

  it("never writes a token to the log", async () => {
    await get(`/feed?token=${reader.token}`);
    await get("/private/x", { authorization: `Bearer ${reader.token}` });
    expect(stack.logText()).not.toContain(reader.token);
    expect(stack.logText()).not.toContain(reader.token.slice(8, 30));
  });
});

describe("identity headers", () => {
  it("strips every inbound x-latchkey-* header, on public and private routes", async () => {
    const spoof = {
      "x-latchkey-key-id": "key_forged",
      "X-Latchkey-Team-Id": "team_forged",
      "x-latchkey-scopes": "admin",
      "x-latchkey-anything": "1",
    };
    const open = echoed(await get("/public/x", spoof));
    expect(Object.keys(open.headers).filter((name) => name.startsWith("x-latchkey-"))).toEqual([]);
    const keyed = echoed(await get("/private/x", { ...spoof, authorization: `Bearer ${reader.token}` }));
    expect(keyed.headers).toMatchObject({
      "x-latchkey-key-id": reader.key.id,
      "x-latchkey-team-id": "team_demo",
      "x-latchkey-scopes": "read",
      "x-latchkey-key-name": "test-key",
    });
    expect(keyed.headers["x-latchkey-anything"]).toBeUndefined();
  });

  it("makes key names header-safe", async () => {
    const odd = stack.keys.issue({ scopes: ["read"], name: "café\r\nx-injected: 1 %" });
    const response = echoed(await get("/private/x", { authorization: `Bearer ${odd.token}` }));
    expect(response.headers["x-latchkey-key-name"]).toBe("caf%C3%A9%0D%0Ax-injected: 1 %25");
    expect(response.headers["x-injected"]).toBeUndefined();
  });

  it("removes the credential before forwarding", async () => {
    const response = echoed(await get("/private/x", { authorization: `Bearer ${reader.token}` }));
    expect(response.headers.authorization).toBeUndefined();
    const apiKey = echoed(await get("/private/x", { "x-api-key": reader.token }));
    expect(apiKey.headers["x-api-key"]).toBeUndefined();
    // Other schemes belong to the app.
    const basic = echoed(await get("/public/x", { authorization: "Basic dXNlcjpwYXNz" }));
    expect(basic.headers.authorization).toBe("Basic dXNlcjpwYXNz");
  });

  it("replaces X-Forwarded-* from untrusted peers and extends a trusted proxy's", async () => {
    const trustedPeer = echoed(
      await get("/public/x", {
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "api.example",
      }),
    );
    // 127.0.0.1 is trusted by default.
    expect(trustedPeer.headers["x-forwarded-for"]).toBe("203.0.113.9, 127.0.0.1");
    expect(trustedPeer.headers["x-forwarded-proto"]).toBe("https");
    expect(trustedPeer.headers["x-forwarded-host"]).toBe("api.example");
  });

  it("drops hop-by-hop headers and those Connection lists", async () => {
    const response = echoed(
      await get("/public/x", {
        connection: "keep-alive, x-hop",
        "x-hop": "1",
        "keep-alive": "timeout=5",
        te: "trailers",
        "proxy-authorization": "Basic x",
      }),
    );
    expect(response.headers["x-hop"]).toBeUndefined();
    expect(response.headers["keep-alive"]).toBeUndefined();
    expect(response.headers.te).toBeUndefined();
    expect(response.headers["proxy-authorization"]).toBeUndefined();
  });
});

describe("identity header spellings an app would merge", () => {
  it.each([
    "x_latchkey_team_id",
    "X_LATCHKEY_SCOPES",
    "x-latchkey_key_id",
    "x.latchkey.scopes",
    "X-LATCHKEY-KEY-NAME",
  ])("%s never reaches the app, on public and private routes", async (name) => {
    for (const response of [
      await get("/public/x", { [name]: "forged" }),
      await get("/private/x", { [name]: "forged", authorization: `Bearer ${reader.token}` }),
    ]) {
      expect(response.status).toBe(200);
      for (const [header, value] of Object.entries(echoed(response).headers)) {
        if (header.replace(/[_.]/g, "-").startsWith("x-latchkey-")) expect(value).not.toBe("forged");
      }
    }
  });

  it("drops underscore spellings of the credential and forwarding headers", async () => {
    const response = echoed(
      await get("/public/x", { x_api_key: reader.token, x_forwarded_for: "10.9.9.9", x_real_ip: "10.9.9.9" }),
    );
    expect(response.headers.x_api_key).toBeUndefined();
    expect(response.headers.x_forwarded_for).toBeUndefined();
    expect(response.headers.x_real_ip).toBeUndefined();
  });
});

describe("method-override and rewrite headers", () => {
  it("are stripped by default, so a public GET cannot become a DELETE in the app", async () => {
    const response = echoed(
      await get("/public/x", {
        "x-http-method-override": "DELETE",
        "x-http-method": "DELETE",
        "x-method-override": "DELETE",
        "x-original-url": "/admin/users",
        "x-rewrite-url": "/admin/users",
        "x-original-uri": "/admin/users",
        "x-forwarded-uri": "/admin/users",
        "x-original-method": "DELETE",
        x_http_method_override: "DELETE",
      }),
    );
    expect(response.method).toBe("GET");
    for (const name of [
      "x-http-method-override",
      "x-http-method",
      "x-method-override",
      "x-original-url",
      "x-rewrite-url",
      "x-original-uri",
      "x-forwarded-uri",
      "x-original-method",
      "x_http_method_override",
    ]) {
      expect(response.headers[name]).toBeUndefined();
    }
  });

  it("pass where the rule allows them and the named method falls under the same rule", async () => {
    const auth = { authorization: `Bearer ${reader.token}` };
    const passed = await send(
      stack.url,
      "POST",
      "/rpc/x",
      { ...auth, "x-http-method-override": "DELETE" },
      "",
    );
    expect(passed.status).toBe(200);
    expect(echoed(passed).headers["x-http-method-override"]).toBe("DELETE");
    const outside = await send(
      stack.url,
      "POST",
      "/rpc-post",
      { ...auth, "x-http-method-override": "GET" },
      "",
    );
    expect(outside.status).toBe(400);
    const bogus = await send(
      stack.url,
      "POST",
      "/rpc/x",
      { ...auth, "x-http-method-override": "DEL ETE" },
      "",
    );
    expect(bogus.status).toBe(400);
    const disagreeing = await send(
      stack.url,
      "POST",
      "/rpc/x",
      { ...auth, "x-http-method-override": "DELETE", "x-http-method": "PUT" },
      "",
    );
    expect(disagreeing.status).toBe(400);
  });
});

describe("methods beside the one a rule names", () => {
  it("HEAD falls under a GET rule", async () => {
    expect((await send(stack.url, "HEAD", "/stream")).status).toBe(401);
    const before = stack.app.handled();
    const allowed = await send(stack.url, "HEAD", `/stream?token=${reader.token}`);
    expect(allowed.status).toBe(200);
    expect(stack.app.handled()).toBe(before + 1);
  });

  it("a query token is removed on every route, public ones included", async () => {
    const options = await send(stack.url, "OPTIONS", `/stream?token=${reader.token}&a=1`);
    expect(echoed(options).path).toBe("/stream?a=1");
    const open = await get(`/public/x?token=${reader.token}&b=2`);
    expect(echoed(open).path).toBe("/public/x?b=2");
    const keyed = await get(`/private/x?token=${reader.token}`, { authorization: `Bearer ${reader.token}` });
    expect(echoed(keyed).path).toBe("/private/x");
    // Unless a public rule says the parameter is the app's own.
    const own = await get("/reset/password?token=app-reset-token");
    expect(echoed(own).path).toBe("/reset/password?token=app-reset-token");
  });
});

describe("secret routes", () => {
  it("accepts the shared secret from any credential source and nothing else", async () => {
    expect((await get("/instance/x", { authorization: `Bearer ${SECRET}` })).status).toBe(200);
    expect((await get("/instance/x", { "x-api-key": SECRET })).status).toBe(200);
    expect((await get("/instance/x", { authorization: `Bearer ${SECRET}x` })).status).toBe(401);
    expect((await get("/instance/x", { authorization: `Bearer ${reader.token}` })).status).toBe(401);
    expect((await get("/instance/x")).status).toBe(401);
  });
});
