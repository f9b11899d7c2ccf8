// Keychain secrets and host rules through the real sidecar process, in front of the demo app, with
// the real token-service (PostgreSQL) and NATS: a keychain secret is a Bearer key only where a rule
// says `keychains: true`; rules match the request's host (`*.pkg.example`) whatever its case, port
// or trailing dot; and a host that could be read two ways is refused: none (HTTP/1.0), two, one
// that is not a host name, an absolute-form target, a trusted proxy's X-Forwarded-Host that names
// another host. Raw sockets where a client library would tidy the request up.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type RawResponse as Response, send, sendRaw } from "../harness/http-client.js";
import { natsUrl } from "../harness/index.js";
import { masterKey } from "../token-service/keychain-fixtures.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { type EchoedRequest, type RecordingUpstream, startRecordingUpstream } from "./recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "./sidecar-process.js";

const POLICY = `
version: 1
preset: all-private
rules:
  - name: packages
    host: "*.pkg.example"
    path: /**
    kind: key
    keychains: true
  - name: any-key
    path: /any-key/**
    kind: key
  - name: docs
    host: [docs.example]
    path: /**
    kind: public
`;

let service: TestService;
let upstream: RecordingUpstream;
let sidecar: SidecarProcess;
/** The same policy, with no trusted proxy: X-Forwarded-Host is not believed at all. */
let untrusting: SidecarProcess;
let keychain: { id: string; secret: string; keyId: string };
let apiKey: string;

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const echoed = (response: Response) => response.json<EchoedRequest>();
const errorOf = (response: Response) => response.json<{ error: { code: string; message: string } }>().error;
const statusOf = (raw: string) => Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1] ?? 0);

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  service = await startTestService({
    natsUrl: natsUrl(),
    settings: { keychainMasterKey: masterKey("hosts") },
  });
  const teamId = (await service.teams().createTeam({ name: "keychain-hosts" })).team?.id ?? "";
  const created = await service.keychains().createKeychain({ teamId, name: "agent keychain" });
  keychain = { id: created.keychain?.id ?? "", keyId: created.keychain?.keyId ?? "", secret: created.secret };
  apiKey = (await service.tokens().issue({ teamId, name: "plain", scopes: ["read"] })).token;
  const common = {
    upstream: upstream.url,
    tokenServiceUrl: service.grpcUrl,
    natsUrl: natsUrl(),
    policy: POLICY,
  };
  [sidecar, untrusting] = await Promise.all([
    spawnSidecar(common),
    spawnSidecar({ ...common, env: { LATCHKEY_TRUSTED_PROXIES: "10.9.9.9" } }),
  ]);
});

afterAll(async () => {
  await Promise.all([sidecar?.stop(), untrusting?.stop()]);
  await service?.close();
  await upstream?.app.close();
});

describe("a keychain secret as a Bearer key", () => {
  it("is accepted on a host rule with keychains: true, with its keychain id upstream", async () => {
    const response = await send(sidecar.url, "POST", "/run", {
      host: "stripe.pkg.example",
      ...bearer(keychain.secret),
    });
    expect(response.status).toBe(200);
    expect(echoed(response).headers).toMatchObject({
      "x-latchkey-key-id": keychain.keyId,
      "x-latchkey-keychain-id": keychain.id,
      "x-latchkey-scopes": "",
    });
    expect(echoed(response).headers.authorization).toBeUndefined();
  });

  it("is refused (403) where the rule does not allow keychains, even a rule that takes any key", async () => {
    const anyKey = await send(sidecar.url, "GET", "/any-key/x", {
      host: "api.example",
      ...bearer(keychain.secret),
    });
    expect(anyKey.status).toBe(403);
    expect(errorOf(anyKey).message).toContain("does not accept keychain secrets");
    expect(
      (await send(sidecar.url, "GET", "/any-key/x", { host: "api.example", ...bearer(apiKey) })).status,
    ).toBe(200);
    // The default (a key with `read`): a keychain holds no scopes.
    const scoped = await send(sidecar.url, "GET", "/elsewhere", {
      host: "api.example",
      ...bearer(keychain.secret),
    });
    expect(scoped.status).toBe(403);
  });

  it("stops working once the keychain is revoked", async () => {
    const created = await service.keychains().createKeychain({ teamId: await teamOf(), name: "to revoke" });
    const call = () => send(sidecar.url, "GET", "/x", { host: "a.pkg.example", ...bearer(created.secret) });
    expect((await call()).status).toBe(200);
    await service.keychains().revokeKeychain({ keychainId: created.keychain?.id ?? "" });
    await vi.waitFor(async () => expect((await call()).status).toBe(401), { timeout: 20_000 });
  });
});

async function teamOf(): Promise<string> {
  const verified = await service.tokens(null).verify({ token: keychain.secret });
  return verified.key?.teamId ?? "";
}

describe("host rules", () => {
  it.each([
    "stripe.pkg.example",
    "STRIPE.PKG.EXAMPLE",
    "stripe.pkg.example.",
    "stripe.pkg.example:8080",
    "Stripe.Pkg.Example.:443",
  ])("match %s, and send the app the host in canonical form", async (host) => {
    expect((await send(sidecar.url, "GET", "/x", { host })).status).toBe(401);
    const response = await send(sidecar.url, "GET", "/x", { host, ...bearer(keychain.secret) });
    expect(response.status).toBe(200);
    const port = /:\d+$/.exec(host)?.[0] ?? "";
    expect(echoed(response).headers.host).toBe(`stripe.pkg.example${port}`);
    expect(echoed(response).headers["x-forwarded-host"]).toBe(`stripe.pkg.example${port}`);
  });

  it.each(["pkg.example", "a.b.pkg.example", "stripe.pkg.example.evil", "stripepkg.example"])(
    "do not match %s (it falls to the default, which takes no keychain)",
    async (host) => {
      expect((await send(sidecar.url, "GET", "/x", { host, ...bearer(keychain.secret) })).status).toBe(403);
    },
  );

  it("make a host public that is private elsewhere", async () => {
    expect((await send(sidecar.url, "GET", "/x", { host: "DOCS.example." })).status).toBe(200);
    expect((await send(sidecar.url, "GET", "/x", { host: "docs.example.evil" })).status).toBe(401);
  });
});

describe("a host that could be read two ways", () => {
  const raw = (lines: string[]) =>
    sendRaw(sidecar.url, Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"));

  it("is refused without a Host (HTTP/1.0), and Node refuses HTTP/1.1 without one", async () => {
    const answer = await raw(["GET /x HTTP/1.0", `Authorization: Bearer ${keychain.secret}`]);
    expect(statusOf(answer)).toBe(400);
    expect(answer).toContain("missing_host");
    expect(statusOf(await raw(["GET /x HTTP/1.1", "Connection: close"]))).toBe(400);
  });

  it("is refused with two Host headers, in either order", async () => {
    for (const hosts of [
      ["docs.example", "stripe.pkg.example"],
      ["stripe.pkg.example", "docs.example"],
    ]) {
      const answer = await raw([
        "GET /x HTTP/1.1",
        ...hosts.map((host) => `Host: ${host}`),
        "Connection: close",
      ]);
      expect(statusOf(answer)).toBe(400);
    }
  });

  it("is refused in an absolute-form request target, whatever Host says", async () => {
    for (const target of [
      "http://docs.example/x",
      "http://stripe.pkg.example/x",
      "HTTP://docs.example:80/x",
    ]) {
      const answer = await raw([`GET ${target} HTTP/1.1`, "Host: docs.example", "Connection: close"]);
      expect(statusOf(answer), target).toBe(400);
    }
  });

  it.each([
    "docs.example@stripe.pkg.example",
    "docs.example/stripe.pkg.example",
    "docs.example, stripe.pkg.example",
    "docs_example",
    "docs.example:99999",
    "docs..example",
    "docs.ex%61mple",
  ])("is refused when it is not a host name: %s", async (host) => {
    const answer = await raw(["GET /x HTTP/1.1", `Host: ${host}`, "Connection: close"]);
    expect(statusOf(answer)).toBe(400);
    expect(answer).toContain("invalid_host");
  });

  it("is refused when a trusted proxy's X-Forwarded-Host names another host", async () => {
    const conflict = await send(sidecar.url, "GET", "/x", {
      host: "docs.example",
      "x-forwarded-host": "stripe.pkg.example",
    });
    expect(conflict.status).toBe(400);
    expect(errorOf(conflict).message).toContain("conflicting_host");
    const agreeing = await send(sidecar.url, "GET", "/x", {
      host: "docs.example",
      "x-forwarded-host": "Docs.Example:443",
    });
    expect(agreeing.status).toBe(200);
    const twice = await raw([
      "GET /x HTTP/1.1",
      "Host: docs.example",
      "X-Forwarded-Host: docs.example",
      "X-Forwarded-Host: stripe.pkg.example",
      "Connection: close",
    ]);
    expect(statusOf(twice)).toBe(400);
  });

  it("is decided on Host alone when the peer is not a trusted proxy, and the app gets that host", async () => {
    const response = await send(untrusting.url, "GET", "/x", {
      host: "docs.example",
      "x-forwarded-host": "stripe.pkg.example",
    });
    expect(response.status).toBe(200);
    expect(echoed(response).headers["x-forwarded-host"]).toBe("docs.example");
  });
});

describe("forward-auth", () => {
  const ask = (headers: Record<string, string>) =>
    send(sidecar.url, "GET", "/_latchkey/auth", {
      "x-original-method": "POST",
      "x-original-uri": "/run",
      ...headers,
    });

  it("decides on the proxy's X-Forwarded-Host and answers with the keychain id", async () => {
    const granted = await ask({ "x-forwarded-host": "stripe.pkg.example", ...bearer(keychain.secret) });
    expect(granted.status).toBe(200);
    expect(granted.headers["x-latchkey-keychain-id"]).toBe(keychain.id);
    expect((await ask({ "x-forwarded-host": "docs.example", ...bearer(keychain.secret) })).status).toBe(200);
    expect((await ask({ "x-forwarded-host": "api.example", ...bearer(keychain.secret) })).status).toBe(403);
  });

  it("refuses a missing or non-canonical X-Forwarded-Host: the app gets the host as sent", async () => {
    expect((await ask(bearer(keychain.secret))).status).toBe(400);
    for (const host of ["STRIPE.pkg.example", "stripe.pkg.example."]) {
      const refused = await ask({ "x-forwarded-host": host, ...bearer(keychain.secret) });
      expect(refused.status, host).toBe(400);
      expect(errorOf(refused).message).toContain("not_canonical_host");
    }
  });
});
