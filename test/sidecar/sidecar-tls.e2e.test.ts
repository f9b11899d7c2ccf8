// The sidecar's HTTPS listener end to end: sidecar processes with certificates from a test CA, in
// front of the demo app, checking keys with the real token-service (PostgreSQL, NATS). HTTP/1.1 and
// HTTP/2 by ALPN, WebSockets over TLS, the certificate reloaded while connections stay open, bad
// certificate files, and the plain listener refusing plain HTTP.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { type ClientHttp2Session, connect as http2Connect, type IncomingHttpHeaders } from "node:http2";
import { Agent, request as httpsRequest, type RequestOptions } from "node:https";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send, sendRaw } from "../harness/http-client.js";
import { createTestPki, type NatsServer, startNats, type TestPki } from "../harness/index.js";
import { eventually } from "../harness/wait.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { type EchoedRequest, type RecordingUpstream, startRecordingUpstream } from "./recording-upstream.js";
import { type SidecarProcess, sidecarExit, spawnSidecar } from "./sidecar-process.js";

let nats: NatsServer;
let service: TestService;
let upstream: RecordingUpstream;
let pki: TestPki;
let ca: Buffer;
/** The folder the sidecar's certificate files live in, as a Secret volume would. */
let certDir: string;
let sidecar: SidecarProcess;
let token: string;

const certFile = () => join(certDir, "tls.crt");
const keyFile = () => join(certDir, "tls.key");
/** A sidecar on the shared certificate files, with `more` settings, on free ports. */
const withTls = (more: Record<string, string> = {}) => ({
  upstream: upstream.url,
  tokenServiceUrl: service.grpcUrl,
  env: {
    LATCHKEY_SIDECAR_TLS_LISTEN: "127.0.0.1:0",
    LATCHKEY_SIDECAR_TLS_CERT: certFile(),
    LATCHKEY_SIDECAR_TLS_KEY: keyFile(),
    ...more,
  },
});
const bearer = () => ({ authorization: `Bearer ${token}` });

/** Replaces a file the way the kubelet and editors do: a new file renamed over the old one. */
function replaceFile(path: string, contents: Buffer | string): void {
  const temporary = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(temporary, contents);
  renameSync(temporary, path);
}

async function issueCertificate(name: string): Promise<{ cert: Buffer; key: Buffer }> {
  const issued = await pki.issue(name, ["IP:127.0.0.1", "DNS:localhost"]);
  return { cert: readFileSync(issued.certFile), key: readFileSync(issued.keyFile) };
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is shown. */
async function servedFingerprint(port: number): Promise<string> {
  const socket = tlsConnect({ host: "127.0.0.1", port, ca, ALPNProtocols: ["http/1.1"] });
  await once(socket, "secureConnect");
  const fingerprint = socket.getPeerCertificate().fingerprint256;
  socket.destroy();
  return fingerprint;
}

interface TlsResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** The ALPN protocol and the server certificate of the connection it came on. */
  readonly alpnProtocol: string | false | null;
  readonly fingerprint256: string;
  readonly reused: boolean;
}

/** One HTTP/1.1 request over TLS (the client offers only http/1.1). */
function requestOverTls(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; agent?: Agent; body?: string } = {},
): Promise<TlsResponse> {
  // Passed on to tls.connect, whose option it is (the https types leave it out).
  const requestOptions: RequestOptions & { ALPNProtocols: string[] } = {
    host: "127.0.0.1",
    port,
    path,
    method: options.method ?? "GET",
    headers: options.headers ?? {},
    ca,
    ALPNProtocols: ["http/1.1"],
    agent: options.agent ?? false,
  };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(requestOptions, (res) => {
      const socket = res.socket as TLSSocket;
      const connection = {
        alpnProtocol: socket.alpnProtocol,
        fingerprint256: socket.getPeerCertificate().fingerprint256,
      };
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("utf8"),
          ...connection,
          reused: req.reusedSocket,
        }),
      );
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** One HTTP/2 request on `session`; `body` undefined ends the stream with the headers. */
function requestOverH2(
  session: ClientHttp2Session,
  headers: Record<string, string | string[]>,
  body?: Buffer,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let responseHeaders: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (received) => {
      responseHeaders = received;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () =>
      resolve({
        status: Number(responseHeaders[":status"]),
        headers: responseHeaders,
        body: Buffer.concat(chunks).toString("utf8"),
      }),
    );
    stream.on("error", reject);
    if (body !== undefined) stream.end(body);
  });
}

const h2Session = (port: number) => http2Connect(`https://127.0.0.1:${port}`, { ca });

/** The value of one series in a Prometheus text exposition, or undefined. */
async function metric(adminUrl: string, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

beforeAll(async () => {
  [nats, upstream, pki] = await Promise.all([
    startNats(),
    startRecordingUpstream(),
    createTestPki("sidecar-tls"),
  ]);
  ca = readFileSync(pki.caFile);
  service = await startTestService({ natsUrl: nats.url });
  const teamId = (await service.teams().createTeam({ name: "tls-e2e" })).team?.id ?? "";
  ({ token } = await service.tokens().issue({ teamId, name: "tls-client", scopes: ["write"] }));
  certDir = mkdtempSync(join(tmpdir(), "latchkey-sidecar-cert-"));
  const first = await issueCertificate("sidecar-first");
  writeFileSync(certFile(), first.cert);
  writeFileSync(keyFile(), first.key);
  sidecar = await spawnSidecar({ ...withTls(), natsUrl: nats.url });
});

afterAll(async () => {
  await sidecar?.stop();
  await service?.close();
  await upstream?.app.close();
  await nats?.dispose();
  pki?.dispose();
  if (certDir !== undefined) rmSync(certDir, { recursive: true, force: true });
});

describe("HTTP/1.1 over TLS", () => {
  it("forwards a request with a key, saying https to the app; refuses one without", async () => {
    const response = await requestOverTls(sidecar.tlsPort as number, "/orders/1?x=1", { headers: bearer() });
    expect(response.alpnProtocol).toBe("http/1.1");
    expect(response.status).toBe(200);
    const echoed = JSON.parse(response.body) as EchoedRequest;
    expect(echoed.path).toBe("/orders/1?x=1");
    expect(echoed.headers["x-forwarded-proto"]).toBe("https");
    expect(echoed.headers["x-latchkey-key-id"]).toMatch(/^key_/);
    expect(echoed.headers.authorization).toBeUndefined();
    const refused = await requestOverTls(sidecar.tlsPort as number, "/orders/1");
    expect(refused.status).toBe(401);
    expect(refused.headers["www-authenticate"]).toMatch(/^Bearer realm="latchkey"/);
    expect(JSON.parse(refused.body).error.code).toBe("unauthenticated");
  });

  it("keeps the plain listener serving beside it (LATCHKEY_SIDECAR_PLAIN_HTTP=serve, the default)", async () => {
    const response = await send(sidecar.url, "GET", "/plain", bearer());
    expect(response.status).toBe(200);
    expect(response.json<EchoedRequest>().headers["x-forwarded-proto"]).toBe("http");
  });

  it("splices a WebSocket over TLS only after the app's 101", async () => {
    const socket = tlsConnect({
      host: "127.0.0.1",
      port: sidecar.tlsPort as number,
      ca,
      ALPNProtocols: ["http/1.1"],
    });
    await once(socket, "secureConnect");
    let received = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
    });
    socket.write(
      `GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer ${token}\r\n` +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    await eventually(
      () => received.toString("latin1"),
      (text) => text.includes('"type":"hello"'),
    );
    const text = received.toString("latin1");
    expect(text).toMatch(/^HTTP\/1\.1 101 /);
    const hello = JSON.parse(text.slice(text.indexOf("{"))) as { headers: Record<string, string> };
    expect(hello.headers["x-forwarded-proto"]).toBe("https");
    expect(hello.headers["x-latchkey-key-id"]).toMatch(/^key_/);
    socket.destroy();
  });
});

describe("HTTP/2 over TLS", () => {
  let session: ClientHttp2Session;
  beforeAll(() => {
    session = h2Session(sidecar.tlsPort as number);
  });
  afterAll(() => session?.close());

  it("negotiates h2 by ALPN and forwards to the HTTP/1.1 app without pseudo-headers, :authority as Host", async () => {
    const response = await requestOverH2(session, {
      ":path": "/h2/items?page=2",
      ...bearer(),
      cookie: ["a=1", "b=2"],
    });
    expect(session.alpnProtocol).toBe("h2");
    expect(response.status).toBe(200);
    const echoed = JSON.parse(response.body) as EchoedRequest;
    expect(echoed).toMatchObject({ method: "GET", path: "/h2/items?page=2", bodyBytes: 0 });
    expect(echoed.headers.host).toBe(`127.0.0.1:${sidecar.tlsPort}`);
    expect(echoed.headers.cookie).toBe("a=1; b=2");
    expect(echoed.headers["x-forwarded-proto"]).toBe("https");
    expect(echoed.headers["x-latchkey-key-id"]).toMatch(/^key_/);
    expect(Object.keys(echoed.headers).filter((name) => name.startsWith(":"))).toEqual([]);
    expect(response.headers["content-type"]).toBe("application/json");
    expect(response.headers.connection).toBeUndefined();
  });

  it("streams a request body that has no length upstream, and one with Content-Length: 0 as empty", async () => {
    const body = randomBytes(70_000);
    const posted = await requestOverH2(session, { ":method": "POST", ":path": "/upload", ...bearer() }, body);
    expect(posted.status).toBe(200);
    expect(JSON.parse(posted.body)).toMatchObject({ method: "POST", bodyBytes: 70_000 });
    const empty = await requestOverH2(
      session,
      { ":method": "POST", ":path": "/empty", "content-length": "0", ...bearer() },
      Buffer.alloc(0),
    );
    expect(JSON.parse(empty.body)).toMatchObject({ method: "POST", bodyBytes: 0 });
  });

  it("refuses over HTTP/2 as over HTTP/1.1: 401 with its JSON body, and forged identity headers are dropped", async () => {
    const refused = await requestOverH2(session, {
      ":path": "/h2/secret",
      "x-latchkey-team-id": "team_forged",
    });
    expect(refused.status).toBe(401);
    expect(refused.headers["www-authenticate"]).toMatch(/^Bearer realm="latchkey"/);
    expect(JSON.parse(refused.body).error.code).toBe("unauthenticated");
    const forged = await requestOverH2(session, {
      ":path": "/h2/forged",
      ...bearer(),
      "x-latchkey-team-id": "team_forged",
      x_latchkey_scopes: "admin",
    });
    const headers = (JSON.parse(forged.body) as EchoedRequest).headers;
    expect(headers["x-latchkey-team-id"]).not.toBe("team_forged");
    expect(headers.x_latchkey_scopes).toBeUndefined();
  });

  it("refuses a Host that disagrees with :authority with 400, before the app sees it", async () => {
    const before = upstream.seen.length;
    const response = await requestOverH2(session, {
      ":path": "/h2/hosts",
      ":authority": "app.example",
      host: "other.example",
      ...bearer(),
    });
    expect(response.status).toBe(400);
    expect(upstream.seen.length).toBe(before);
  });

  it("takes exactly HTTP/1.1's methods: `delete` or an unknown token never reaches the app", async () => {
    const before = upstream.seen.length;
    for (const method of ["delete", "Delete", "PURGEALL", "GETX"]) {
      const response = await requestOverH2(session, { ":method": method, ":path": "/orders/1", ...bearer() });
      expect(response.status, method).toBe(400);
      expect(JSON.parse(response.body).error.code).toBe("invalid_request");
    }
    expect(upstream.seen.length).toBe(before);
    expect(
      (await requestOverH2(session, { ":method": "DELETE", ":path": "/orders/1", ...bearer() })).status,
    ).toBe(200);
  });

  it("survives bytes that are not HTTP/2 after ALPN chose h2, and bytes that are not TLS at all", async () => {
    const port = sidecar.tlsPort as number;
    const garbled = tlsConnect({ host: "127.0.0.1", port, ca, ALPNProtocols: ["h2"] });
    garbled.on("error", () => {});
    await once(garbled, "secureConnect");
    expect(garbled.alpnProtocol).toBe("h2");
    garbled.write(randomBytes(4096));
    garbled.resume(); // read the server's GOAWAY, then its end of the connection
    await once(garbled, "close");
    const plain = netConnect(port, "127.0.0.1", () => plain.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    let cleartext = "";
    plain.on("data", (chunk: Buffer) => {
      cleartext += chunk.toString("latin1");
    });
    plain.on("error", () => {});
    await once(plain, "close");
    expect(cleartext).not.toContain("HTTP/1.1 200");
    expect((await requestOverH2(session, { ":path": "/still-up", ...bearer() })).status).toBe(200);
  });

  it("opens no tunnel: CONNECT is refused and WebSockets over HTTP/2 (RFC 8441) are not offered", async () => {
    const before = upstream.seen.length;
    const connect = await requestOverH2(session, {
      ":method": "CONNECT",
      ":authority": upstream.url.slice(7),
    });
    expect(connect.status).toBe(405);
    expect(session.remoteSettings.enableConnectProtocol).toBe(false);
    expect(upstream.seen.length).toBe(before);
  });

  it("streams server-sent events unbuffered over HTTP/2", async () => {
    const stream = session.request({ ":path": "/events?interval=20", ...bearer() });
    let text = "";
    stream.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
    });
    await eventually(
      () => text,
      (received) => (received.match(/data: /g) ?? []).length >= 3,
    );
    stream.close();
    expect(text).toContain('data: {"tick":0}');
  });
});

describe("the certificate", () => {
  it("is reloaded when its files change, while an HTTP/2 session and a kept-alive HTTP/1.1 connection stay open", async () => {
    const port = sidecar.tlsPort as number;
    const first = await servedFingerprint(port);
    const session = h2Session(port);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await requestOverH2(session, { ":path": "/before", ...bearer() })).status).toBe(200);
      const kept = await requestOverTls(port, "/before-h1", { headers: bearer(), agent });
      expect(kept.status).toBe(200);
      const second = await issueCertificate("sidecar-second");
      replaceFile(certFile(), second.cert);
      replaceFile(keyFile(), second.key);
      const reloaded = await eventually(
        () => servedFingerprint(port),
        (fingerprint) => fingerprint !== first,
        { what: "the new certificate served", timeoutMs: 15_000, intervalMs: 100 },
      );
      expect(reloaded).not.toBe(first);
      // The connections opened before the reload carry on, with the certificate they started with.
      expect((await requestOverH2(session, { ":path": "/after", ...bearer() })).status).toBe(200);
      expect((session.socket as TLSSocket).getPeerCertificate().fingerprint256).toBe(first);
      const again = await requestOverTls(port, "/after-h1", { headers: bearer(), agent });
      expect(again.status).toBe(200);
      expect(again.reused).toBe(true);
      expect(again.fingerprint256).toBe(first);
      expect(await metric(sidecar.adminUrl, 'latchkey_sidecar_tls_reloads_total{result="applied"}')).toBe(1);
      const notAfter = await metric(
        sidecar.adminUrl,
        "latchkey_sidecar_tls_certificate_expiry_timestamp_seconds",
      );
      expect(notAfter).toBeGreaterThan(Date.now() / 1000);
      await eventually(
        () => sidecar.output(),
        (output) => output.includes("TLS certificate reloaded"),
        { what: "the reload logged (the log is flushed once a second)", timeoutMs: 5_000, intervalMs: 100 },
      );
    } finally {
      session.close();
      agent.destroy();
    }
  });

  it("keeps the certificate in use when the new files are bad, logs why, and takes the next good pair", async () => {
    const port = sidecar.tlsPort as number;
    const inUse = await servedFingerprint(port);
    const refusedBefore =
      (await metric(sidecar.adminUrl, 'latchkey_sidecar_tls_reloads_total{result="refused"}')) ?? 0;
    const previousKey = readFileSync(keyFile());
    // Not a certificate at all.
    replaceFile(
      certFile(),
      "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );
    await eventually(
      () => metric(sidecar.adminUrl, 'latchkey_sidecar_tls_reloads_total{result="refused"}'),
      (refused) => (refused ?? 0) > refusedBefore,
      { what: "a refused reload", timeoutMs: 15_000, intervalMs: 100 },
    );
    // The log is flushed once a second.
    await eventually(
      () => sidecar.output(),
      (output) => output.includes("holds no PEM certificate"),
      { timeoutMs: 5_000, intervalMs: 100 },
    );
    expect(await servedFingerprint(port)).toBe(inUse);
    // A certificate whose key has not arrived yet: the key on disk is the old one.
    const third = await issueCertificate("sidecar-third");
    replaceFile(certFile(), third.cert);
    await eventually(
      () => sidecar.output(),
      (output) => output.includes("is not the private key of the certificate"),
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    expect(await servedFingerprint(port)).toBe(inUse);
    expect(readFileSync(keyFile())).toEqual(previousKey);
    expect((await requestOverTls(port, "/still-served", { headers: bearer() })).status).toBe(200);
    // The key arrives: the pair is whole again.
    replaceFile(keyFile(), third.key);
    await eventually(
      () => servedFingerprint(port),
      (fingerprint) => fingerprint !== inUse,
      { what: "the third certificate served", timeoutMs: 15_000, intervalMs: 100 },
    );
    expect(sidecar.output()).not.toContain(third.key.toString("utf8").split("\n")[1] ?? "(none)");
  });

  it.each<[string, (dir: string) => Promise<Record<string, string>>, string]>([
    [
      "a certificate file that does not exist",
      async (dir) => ({
        LATCHKEY_SIDECAR_TLS_CERT: join(dir, "missing.crt"),
        LATCHKEY_SIDECAR_TLS_KEY: keyFile(),
      }),
      "LATCHKEY_SIDECAR_TLS_CERT",
    ],
    [
      "a key of another certificate",
      async (dir) => {
        const other = await pki.issue("sidecar-other", ["IP:127.0.0.1"]);
        copyFileSync(other.keyFile, join(dir, "other.key"));
        return { LATCHKEY_SIDECAR_TLS_CERT: certFile(), LATCHKEY_SIDECAR_TLS_KEY: join(dir, "other.key") };
      },
      "LATCHKEY_SIDECAR_TLS_KEY",
    ],
    [
      "a certificate without its key",
      async () => ({ LATCHKEY_SIDECAR_TLS_CERT: certFile() }),
      "LATCHKEY_SIDECAR_TLS_KEY",
    ],
    [
      "refusing plain HTTP without HTTPS",
      async () => ({ LATCHKEY_SIDECAR_PLAIN_HTTP: "refuse" }),
      "LATCHKEY_SIDECAR_PLAIN_HTTP",
    ],
    [
      "a plain-HTTP mode that does not exist",
      async () => ({ LATCHKEY_SIDECAR_PLAIN_HTTP: "redirect" }),
      "LATCHKEY_SIDECAR_PLAIN_HTTP",
    ],
  ])("stops start-up with exit code 2 for %s, naming the setting", async (_name, settings, variable) => {
    const dir = mkdtempSync(join(tmpdir(), "latchkey-bad-tls-"));
    try {
      const { code, output } = await sidecarExit({
        upstream: upstream.url,
        tokenServiceUrl: service.grpcUrl,
        env: { LATCHKEY_SIDECAR_TLS_LISTEN: "127.0.0.1:0", ...(await settings(dir)) },
      });
      expect(code).toBe(2);
      expect(output).toContain(variable);
      expect(output).not.toContain("PRIVATE KEY");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("LATCHKEY_SIDECAR_PLAIN_HTTP=refuse", () => {
  let refusing: SidecarProcess;
  beforeAll(async () => {
    refusing = await spawnSidecar({
      ...withTls({ LATCHKEY_SIDECAR_PLAIN_HTTP: "refuse" }),
      natsUrl: nats.url,
    });
  });
  afterAll(() => refusing?.stop());

  it("answers every plain request 403 https_required and closes, with nothing reaching the app", async () => {
    const before = upstream.seen.length;
    for (const [method, path] of [
      ["GET", "/orders?token=x"],
      ["POST", "/orders"],
      ["GET", "/health"],
      ["GET", "/_latchkey/auth"],
    ] as const) {
      const response = await send(refusing.url, method, path, bearer(), method === "POST" ? "{}" : undefined);
      expect(response.status, path).toBe(403);
      expect(response.headers.connection).toBe("close");
      expect(response.headers.location).toBeUndefined();
      const error = response.json<{ error: { code: string; message: string } }>().error;
      expect(error.code).toBe("https_required");
      expect(error.message).toMatch(/HTTPS only/);
      expect(error.message).not.toContain(token);
    }
    expect(upstream.seen.length).toBe(before);
    const line = await refusing.waitForAccessLine((entry) => entry.decision === "https_required");
    expect(line.status).toBe(403);
    expect(line.path).toBe("/orders");
    expect(refusing.output()).not.toContain(token);
  });

  it("refuses a WebSocket handshake on the plain port too, and closes the connection", async () => {
    const answer = await sendRaw(
      refusing.url,
      Buffer.from(
        `GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer ${token}\r\n` +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      ),
    );
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(answer).toContain('"code":"https_required"');
    expect(answer).not.toContain("101 Switching");
  });

  it("serves the same requests over HTTPS", async () => {
    const response = await requestOverTls(refusing.tlsPort as number, "/orders", { headers: bearer() });
    expect(response.status).toBe(200);
  });
});

describe("shutdown", () => {
  it("cuts a connection that never finishes its TLS handshake when the drain time is up", async () => {
    const short = await spawnSidecar(withTls({ LATCHKEY_SHUTDOWN_TIMEOUT_MS: "1000" }));
    const silent = netConnect(short.tlsPort as number, "127.0.0.1");
    silent.on("error", () => {});
    await once(silent, "connect");
    const cut = once(silent, "close");
    // Without the cut, Node's 120 s handshake timeout would hold the listener open and the stop
    // would end in SIGKILL after 10 s.
    await short.stop();
    await cut;
    expect(short.process.child.exitCode).toBe(0);
  });

  it("exits cleanly on SIGTERM with an HTTP/2 session and an idle HTTP/1.1 connection open", async () => {
    const short = await spawnSidecar(withTls({ LATCHKEY_SHUTDOWN_TIMEOUT_MS: "20000" }));
    const session = h2Session(short.tlsPort as number);
    const agent = new Agent({ keepAlive: true });
    try {
      expect((await requestOverH2(session, { ":path": "/open", ...bearer() })).status).toBe(200);
      expect(
        (await requestOverTls(short.tlsPort as number, "/idle", { headers: bearer(), agent })).status,
      ).toBe(200);
      const goaway = once(session, "goaway");
      await short.stop();
      await goaway;
      // Exited by itself (code 0), long before the 20 s drain limit would have cut the connections.
      expect(short.process.child.exitCode).toBe(0);
      expect(short.output()).toContain("sidecar stopped");
    } finally {
      session.destroy();
      agent.destroy();
    }
  });
});
