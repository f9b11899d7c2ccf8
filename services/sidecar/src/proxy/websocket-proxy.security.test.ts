import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createTestPki, type TestPki } from "../../../../test/harness/certificates.js";
import { waitUntil } from "../../../../test/harness/wait.js";
import { createKeyCheckerFixture, type KeyCheckerFixture } from "../../test-support/key-checker.js";
import { parseSidecarConfig } from "../config.js";
import { compilePolicy } from "../policy/policy.js";
import { type SidecarHandle, startSidecar } from "../sidecar.js";

/** A request an app ran, as it saw it. */
interface Ran {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

/**
 * Apps without WebSocket support, as most apps behind a sidecar are: node:http
 * answers an upgrade it has no listener for as an ordinary keep-alive request.
 */
type AppKind = "node-http" | "router";

function startApp(kind: AppKind, ran: Ran[]): Promise<Server> {
  const record = (req: IncomingMessage) =>
    ran.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers });
  let handler: (req: IncomingMessage, res: ServerResponse) => void;
  if (kind === "node-http") {
    handler = (req, res) => {
      record(req);
      if (req.url === "/refuse-426") {
        res.writeHead(426, { "content-type": "text/plain" });
        res.end("websocket not here");
        return;
      }
      if (req.url === "/chunked") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("part one,");
        setTimeout(() => res.end("part two"), 20);
        return;
      }
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`ran ${req.method} ${req.url}`);
    };
  } else {
    // An Express-like router: handlers by method and path, a 404 for the rest.
    const routes: Array<[string, RegExp, (req: IncomingMessage, res: ServerResponse) => void]> = [
      ["GET", /^\/healthz$/i, (_req, res) => res.end("ok")],
      ["POST", /^\/admin\/delete-everything\/?$/i, (_req, res) => res.end("deleted everything")],
    ];
    handler = (req, res) => {
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      for (const [method, pattern, route] of routes) {
        if (method === req.method && pattern.test(path)) {
          record(req);
          route(req, res);
          return;
        }
      }
      res.statusCode = 404;
      res.end("not found");
    };
  }
  const server = createServer({ keepAliveTimeout: 5_000 }, handler);
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/**
 * How the client reaches the sidecar: its plain listener, or its HTTPS listener as an HTTP/1.1
 * client (WebSockets need HTTP/1.1: the HTTPS listener does not offer RFC 8441's extended CONNECT).
 */
type Transport = "tcp" | "tls";

/** One TCP or TLS connection to the sidecar, read as a single string. */
function rawConnection(
  port: number,
  ca?: Buffer,
): { socket: Socket; received: () => string; closed: Promise<void> } {
  const socket =
    ca === undefined
      ? connect(port, "127.0.0.1")
      : tlsConnect({ host: "127.0.0.1", port, ca, ALPNProtocols: ["http/1.1"] });
  let text = "";
  socket.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1");
  });
  socket.on("error", () => {});
  const closed = once(socket, "close").then(() => undefined);
  return { socket, received: () => text, closed };
}

const UPGRADE_HEALTHZ =
  "GET /healthz HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
const SMUGGLED_ADMIN =
  "POST /admin/delete-everything HTTP/1.1\r\nHost: app\r\nX-Latchkey-Scopes: admin\r\n" +
  "X-Latchkey-Key-Id: key_forged\r\nContent-Length: 0\r\n\r\n";

/**
 * An app of `kind` behind a sidecar with the reads-public preset and an admin rule, for one
 * describe block, reached over `transport`.
 */
function appBehindSidecar(
  kind: AppKind,
  ran: Ran[],
  transport: Transport,
): { connect: () => ReturnType<typeof rawConnection> } {
  let app: Server | undefined;
  let keys: KeyCheckerFixture | undefined;
  let sidecar: SidecarHandle | undefined;
  let pki: TestPki | undefined;
  let ca: Buffer | undefined;
  beforeAll(async () => {
    app = await startApp(kind, ran);
    keys = await createKeyCheckerFixture();
    let tls = {};
    if (transport === "tls") {
      pki = await createTestPki("websocket");
      const { certFile, keyFile } = await pki.issue("sidecar", ["IP:127.0.0.1"]);
      ca = readFileSync(pki.caFile);
      tls = { tlsListen: "127.0.0.1:0", tlsCert: certFile, tlsKey: keyFile };
    }
    sidecar = await startSidecar(
      parseSidecarConfig({
        upstream: `http://127.0.0.1:${(app.address() as AddressInfo).port}`,
        listen: "127.0.0.1:0",
        adminListen: "127.0.0.1:0",
        shutdownTimeoutMs: 500,
        ...tls,
      }),
      {
        keyChecker: keys.verifier,
        logger: pino({ level: "silent" }),
        policy: compilePolicy({
          preset: "reads-public",
          rules: [{ path: "/admin/**", kind: "key", scopes: ["admin"] }],
        }),
      },
    );
  });
  afterAll(async () => {
    await sidecar?.close();
    await keys?.close();
    app?.closeAllConnections();
    await new Promise((resolve) => app?.close(resolve));
    pki?.dispose();
  });
  beforeEach(() => {
    ran.length = 0;
  });
  return {
    connect: () => {
      const handle = sidecar as SidecarHandle;
      return transport === "tls" ? rawConnection(handle.tlsPort as number, ca) : rawConnection(handle.port);
    },
  };
}

describe.each<[AppKind, Transport]>([
  ["node-http", "tcp"],
  ["router", "tcp"],
  ["node-http", "tls"],
  ["router", "tls"],
])("a WebSocket upgrade the app (%s) does not accept, over %s", (kind, transport) => {
  const ran: Ran[] = [];
  const sidecar = appBehindSidecar(kind, ran, transport);

  it("relays the app's answer and closes, so a later request on the socket never reaches the app", async () => {
    const connection = sidecar.connect();
    connection.socket.write(UPGRADE_HEALTHZ);
    await waitUntil(() => connection.received().includes("\r\n\r\n"));
    expect(connection.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(connection.received()).toMatch(/\r\nconnection: close\r\n/i);
    connection.socket.write(SMUGGLED_ADMIN);
    await connection.closed;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(ran.map((request) => `${request.method} ${request.path}`)).toEqual(["GET /healthz"]);
    expect(connection.received()).not.toContain("deleted everything");
  });

  it("never forwards a request pipelined behind the handshake in the same packet", async () => {
    const connection = sidecar.connect();
    connection.socket.write(UPGRADE_HEALTHZ + SMUGGLED_ADMIN);
    await connection.closed;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(ran.map((request) => `${request.method} ${request.path}`)).toEqual(["GET /healthz"]);
    for (const request of ran) expect(request.headers["x-latchkey-scopes"]).toBeUndefined();
  });

  it("refuses an upgrade that is not a body-less GET", async () => {
    for (const head of [
      "POST /admin/delete-everything HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 60\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n\r\n",
    ]) {
      const connection = sidecar.connect();
      connection.socket.write(head + SMUGGLED_ADMIN);
      await connection.closed;
      expect(connection.received()).toMatch(/^HTTP\/1\.1 400 /);
    }
    expect(ran).toEqual([]);
  });
});

describe.each<Transport>(["tcp", "tls"])(
  "an app's refusal of a WebSocket handshake, over %s",
  (transport) => {
    const sidecar = appBehindSidecar("node-http", [], transport);

    it.each([
      ["/refuse-426", /^HTTP\/1\.1 426 [\s\S]*websocket not here$/],
      ["/chunked", /^HTTP\/1\.1 200 [\s\S]*part one,part two$/],
    ])("reaches the client whole (%s), then the connection closes", async (path, expected) => {
      const connection = sidecar.connect();
      connection.socket.write(UPGRADE_HEALTHZ.replace("/healthz", path));
      await connection.closed;
      expect(connection.received()).toMatch(expected);
      expect(connection.received()).not.toMatch(/transfer-encoding/i);
    });
  },
);
