import { describe, expect, it } from "vitest";
import { buildUpstreamHeaders, filterResponseHeaders, scanRequestHeaders } from "./forward-headers.js";
import { headerSafe, identityHeaders } from "./identity-headers.js";

const pairs = (flat: readonly string[]) => {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
};

describe("scanRequestHeaders", () => {
  it.each([
    "x_latchkey_team_id",
    "X_LATCHKEY_SCOPES",
    "x-latchkey_key_id",
    "x.latchkey.key-id",
    "X-LatchKey-Scopes",
    "x_api_key",
    "x_forwarded_for",
    "X_Real_IP",
    "x_original_uri",
    "x_http_method_override",
    "X-Original-URL",
    "x-rewrite-url",
    "x_rewrite_url",
  ])("drops %s, which an app merging _ and . with - would read as a header the sidecar owns", (name) => {
    const scanned = scanRequestHeaders(["host", "app", name, "forged", "x_custom_thing", "kept"]);
    expect(pairs(scanned.forward)).toEqual([
      ["host", "app"],
      ["x_custom_thing", "kept"],
    ]);
    expect(scanned.strippedSensitive).toBe(true);
  });

  it("takes method-override headers aside, and reports disagreeing ones as an empty method", () => {
    const one = scanRequestHeaders(["X-HTTP-Method-Override", "delete", "accept", "*/*"]);
    expect(pairs(one.forward)).toEqual([["accept", "*/*"]]);
    expect(one.methodOverride).toBe("DELETE");
    expect(one.methodOverrideHeaders).toEqual(["X-HTTP-Method-Override", "delete"]);
    expect(one.strippedSensitive).toBe(false);
    const two = scanRequestHeaders(["X-HTTP-Method", "PUT", "X-Method-Override", "DELETE"]);
    expect(two.methodOverride).toBe("");
  });

  it("never forwards the forward-auth headers X-Original-URI/-Method and X-Forwarded-Uri/-Method", () => {
    const scanned = scanRequestHeaders([
      "X-Original-URI",
      "/admin",
      "X-Forwarded-Uri",
      "/admin",
      "X-Original-Method",
      "GET",
      "X-Forwarded-Method",
      "GET",
    ]);
    expect(scanned.forward).toEqual([]);
    expect(scanned.originalUri).toBe("/admin");
  });

  it("sorts credentials, forwarding and hop-by-hop headers out of what is forwarded", () => {
    const scanned = scanRequestHeaders([
      "Host",
      "app",
      "Authorization",
      "Bearer tok",
      "X-API-Key",
      "key",
      "Connection",
      "keep-alive, X-Secret-Hop",
      "X-Secret-Hop",
      "1",
      "Keep-Alive",
      "timeout=5",
      "Transfer-Encoding",
      "chunked",
      "TE",
      "trailers",
      "Upgrade",
      "h2c",
      "Proxy-Authorization",
      "Basic x",
      "Expect",
      "100-continue",
      "X-Latchkey-Key-Id",
      "forged",
      "x-latchkey-whatever",
      "forged",
      "X-Forwarded-For",
      "1.1.1.1",
      "X-Forwarded-For",
      "2.2.2.2",
      "X-Request-Id",
      "abc-1",
      "Accept",
      "*/*",
    ]);
    expect(pairs(scanned.forward)).toEqual([
      ["Host", "app"],
      ["Accept", "*/*"],
    ]);
    expect(scanned.bearer).toEqual(["tok"]);
    expect(scanned.apiKey).toEqual(["key"]);
    expect(scanned.credentialHeaders).toEqual(["Authorization", "Bearer tok", "X-API-Key", "key"]);
    expect(scanned.forwardedFor).toBe("1.1.1.1, 2.2.2.2");
    expect(scanned.requestId).toBe("abc-1");
    expect(scanned.hasBody).toBe(true);
    expect(scanned.upgrade).toBe("h2c");
  });

  it("leaves other Authorization schemes to the app and ignores odd request ids", () => {
    const scanned = scanRequestHeaders([
      "authorization",
      "Basic abc",
      "x-request-id",
      "bad id\u0001",
      "content-length",
      "0",
    ]);
    expect(pairs(scanned.forward)).toEqual([
      ["authorization", "Basic abc"],
      ["content-length", "0"],
    ]);
    expect(scanned.bearer).toEqual([]);
    expect(scanned.requestId).toBeUndefined();
    expect(scanned.hasBody).toBe(false);
  });
});

describe("scanRequestHeaders for an HTTP/2 request", () => {
  const h2 = (raw: string[], endedWithHeaders = true) => scanRequestHeaders(raw, { endedWithHeaders });

  it("forwards no pseudo-header, makes :authority the Host and joins cookie fields into one", () => {
    const scanned = h2([
      ":method",
      "GET",
      ":path",
      "/a",
      ":scheme",
      "https",
      ":authority",
      "api.example:8443",
      "cookie",
      "a=1",
      "accept",
      "*/*",
      "cookie",
      "b=2",
    ]);
    expect(pairs(scanned.forward)).toEqual([
      ["accept", "*/*"],
      ["cookie", "a=1; b=2"],
      ["host", "api.example:8443"],
    ]);
    expect(scanned.host).toBe("api.example:8443");
    expect(scanned.hostConflict).toBe(false);
  });

  it("keeps a Host that agrees with :authority (case aside) and flags one that does not", () => {
    expect(h2([":authority", "API.example", "host", "api.example"]).hostConflict).toBe(false);
    expect(pairs(h2([":authority", "API.example", "host", "api.example"]).forward)).toEqual([
      ["host", "api.example"],
    ]);
    expect(h2([":authority", "api.example", "host", "admin.internal"]).hostConflict).toBe(true);
  });

  it("has a body when the stream outlived its headers, unless it says Content-Length: 0", () => {
    expect(h2([":path", "/"], true).hasBody).toBe(false);
    expect(h2([":path", "/"], false).hasBody).toBe(true);
    expect(h2([":path", "/", "content-length", "0"], false).hasBody).toBe(false);
    expect(h2([":path", "/", "content-length", "12"], false).hasBody).toBe(true);
  });

  it("leaves HTTP/1.1 requests as they were: cookie fields apart, no body without a length", () => {
    const scanned = scanRequestHeaders(["host", "a", "cookie", "a=1", "cookie", "b=2"]);
    expect(pairs(scanned.forward)).toEqual([
      ["host", "a"],
      ["cookie", "a=1"],
      ["cookie", "b=2"],
    ]);
    expect(scanned.hasBody).toBe(false);
    expect(scanned.hostConflict).toBe(false);
  });
});

describe("buildUpstreamHeaders", () => {
  const context = {
    peer: "10.0.0.5",
    secure: false,
    requestId: "r-1",
    identity: undefined,
    passCredential: false,
    passMethodOverride: false,
  };

  it("says https to the app for a client on the HTTPS listener, unless a trusted proxy said otherwise", () => {
    const scanned = scanRequestHeaders(["host", "api"]);
    const headers = pairs(
      buildUpstreamHeaders(scanned, { ...context, secure: true, isTrusted: () => false }),
    );
    expect(headers).toContainEqual(["x-forwarded-proto", "https"]);
    const proxied = scanRequestHeaders(["host", "api", "x-forwarded-proto", "http"]);
    const trusted = pairs(buildUpstreamHeaders(proxied, { ...context, secure: true, isTrusted: () => true }));
    expect(trusted).toContainEqual(["x-forwarded-proto", "http"]);
  });

  it("sets X-Forwarded-* from its own view for untrusted peers", () => {
    const scanned = scanRequestHeaders([
      "host",
      "api",
      "x-forwarded-for",
      "6.6.6.6",
      "x-forwarded-host",
      "evil",
      "forwarded",
      "for=6.6.6.6",
    ]);
    const headers = pairs(buildUpstreamHeaders(scanned, { ...context, isTrusted: () => false }));
    expect(headers).toEqual([
      ["host", "api"],
      ["x-forwarded-for", "10.0.0.5"],
      ["x-forwarded-proto", "http"],
      ["x-forwarded-host", "api"],
      ["x-request-id", "r-1"],
    ]);
  });

  it("extends a trusted proxy's headers, passes credentials when asked and adds the identity", () => {
    const scanned = scanRequestHeaders([
      "host",
      "api",
      "x-forwarded-for",
      "1.2.3.4",
      "x-forwarded-proto",
      "https",
      "authorization",
      "Bearer t",
    ]);
    const headers = pairs(
      buildUpstreamHeaders(scanned, {
        ...context,
        isTrusted: () => true,
        passCredential: true,
        identity: ["x-latchkey-key-id", "key_1"],
      }),
    );
    expect(headers).toEqual([
      ["host", "api"],
      ["authorization", "Bearer t"],
      ["x-latchkey-key-id", "key_1"],
      ["x-forwarded-for", "1.2.3.4, 10.0.0.5"],
      ["x-forwarded-proto", "https"],
      ["x-forwarded-host", "api"],
      ["x-request-id", "r-1"],
    ]);
  });
});

describe("identity headers", () => {
  it("are header-safe and cached per key", () => {
    const key = {
      id: "key_1",
      teamId: "team_1",
      name: "naïve\nname",
      scopes: ["read", "chats:write"],
      environment: "live",
      expiresAt: undefined,
      metadata: {},
    };
    const headers = identityHeaders(key);
    expect(pairs(headers)).toEqual([
      ["x-latchkey-key-id", "key_1"],
      ["x-latchkey-team-id", "team_1"],
      ["x-latchkey-scopes", "read chats:write"],
      ["x-latchkey-key-name", "na%C3%AFve%0Aname"],
      ["x-latchkey-environment", "live"],
    ]);
    expect(identityHeaders(key)).toBe(headers);
    const owned = identityHeaders({ ...key, environment: "staging", owner: "agent-7" });
    expect(pairs(owned).slice(4)).toEqual([
      ["x-latchkey-environment", "staging"],
      ["x-latchkey-owner", "agent-7"],
    ]);
    expect(headerSafe("100% ok")).toBe("100%25 ok");
    expect(headerSafe("plain-name_1")).toBe("plain-name_1");
  });
});

describe("filterResponseHeaders", () => {
  it("drops hop-by-hop response headers and notices event streams", () => {
    const raw = [
      "Content-Type",
      "text/event-stream; charset=utf-8",
      "Connection",
      "keep-alive, X-Hop",
      "X-Hop",
      "1",
      "Transfer-Encoding",
      "chunked",
      "Keep-Alive",
      "timeout=5",
      "Set-Cookie",
      "a=1",
      "Set-Cookie",
      "b=2",
    ].map((value) => Buffer.from(value, "latin1"));
    const { headers, eventStream } = filterResponseHeaders(raw);
    expect(eventStream).toBe(true);
    expect(pairs(headers)).toEqual([
      ["Content-Type", "text/event-stream; charset=utf-8"],
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
    ]);
  });

  it("reads a plain Content-Length, and -1 for none, several or a malformed one", () => {
    const lengthOf = (...pairs: string[]) =>
      filterResponseHeaders(pairs.map((value) => Buffer.from(value, "latin1"))).contentLength;
    expect(lengthOf("Content-Length", "42", "Content-Type", "text/plain")).toBe(42);
    expect(lengthOf("content-length", "0")).toBe(0);
    expect(lengthOf("Content-Type", "text/plain")).toBe(-1);
    expect(lengthOf("Content-Length", "42", "Content-Length", "42")).toBe(-1);
    expect(lengthOf("Content-Length", "4 2")).toBe(-1);
    expect(lengthOf("Content-Length", "-1")).toBe(-1);
    expect(lengthOf("Content-Length", "1e3")).toBe(-1);
  });
});
