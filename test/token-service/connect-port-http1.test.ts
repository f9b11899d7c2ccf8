// The Connect port in cleartext serves HTTP/1.1 and h2c on one port, telling them apart by each
// connection's first bytes. Checked with plain curl, connect-node's HTTP/1.1 and HTTP/2 transports,
// and raw sockets that split, slow down, garble or abandon what they send.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Code, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { TeamService } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ConnectServerOptions,
  createConnectServer,
} from "../../services/token-service/src/server/connect/connect-server.js";
import { GRPC_NEEDS_HTTP2 } from "../../services/token-service/src/server/connect/grpc-over-http1.js";
import type { RunningServer } from "../../services/token-service/src/server/shared/running-server.js";
import {
  captureLogger,
  createTestTeams,
  rejection,
} from "../../services/token-service/test-support/test-servers.js";
import {
  byteByByte,
  EMPTY_SETTINGS_FRAME,
  H2_PREFACE,
  rawExchange,
  startsWithSettingsFrame,
} from "./raw-socket.js";

const run = promisify(execFile);
const SNIFF_TIMEOUT_MS = 300;
const LIST_TEAMS = "/latchkey.v1.TeamService/ListTeams";

let server: RunningServer;
let port: number;
let baseUrl: string;
const { logger, lines } = captureLogger();

/** A Connect server of the test teams on a free port. */
function startServer(options: Partial<ConnectServerOptions> = {}) {
  const listen = { host: "127.0.0.1", port: 0 };
  return createConnectServer({ services: [createTestTeams()], listen, logger, ...options });
}

beforeAll(async () => {
  server = await startServer({ sniffTimeoutMs: SNIFF_TIMEOUT_MS });
  port = server.port;
  baseUrl = `http://127.0.0.1:${port}`;
});
afterAll(() => server?.close(1_000));

/** curl's answer to a JSON POST: status, HTTP version and body. */
async function curl(
  versionFlag: string,
  body = "{}",
  headers: string[] = ["content-type: application/json"],
) {
  const { stdout } = await run(
    "curl",
    [
      "-sS",
      versionFlag,
      ...headers.flatMap((h) => ["-H", h]),
      "--data-binary",
      body,
      "-w",
      "\n%{http_code} %{http_version}",
      `${baseUrl}${LIST_TEAMS}`,
    ],
    { timeout: 10_000 },
  );
  const cut = stdout.lastIndexOf("\n");
  const [status, version] = stdout.slice(cut + 1).split(" ");
  return { status: Number(status), version, body: stdout.slice(0, cut) };
}

/** An HTTP/1.x request for ListTeams with a JSON body, as bytes. */
function listTeamsRequest(version = "1.1", extra = ""): string {
  return (
    `POST ${LIST_TEAMS} HTTP/${version}\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `Content-Length: 2\r\n${extra}\r\n{}`
  );
}

const answered = (received: Buffer) => received.toString("latin1").includes("has-peer");

describe("plain curl on the Connect port", () => {
  it("gets the same answer over HTTP/1.1, h2c prior knowledge and HTTP/1.0", async () => {
    const answers = await Promise.all([
      curl("--http1.1"),
      curl("--http2-prior-knowledge"),
      curl("--http1.0"),
    ]);
    // Node answers an HTTP/1.0 request with an HTTP/1.1 status line (RFC 9110 §2.5 allows it).
    expect(answers.map((a) => a.version)).toEqual(["1.1", "2", "1.1"]);
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toEqual({
        teams: [{ id: "team_1", name: "connect:" }],
        nextPageToken: "has-peer",
      });
    }
  });

  it("refuses gRPC over HTTP/1.1 with 505 and a message, rather than hanging", async () => {
    const answer = await curl("--http1.1", "", ["content-type: application/grpc"]);
    expect(answer.status).toBe(505);
    expect(answer.body).toBe(GRPC_NEEDS_HTTP2);
    // application/grpc+proto is gRPC too; gRPC-Web is not refused.
    expect((await curl("--http1.1", "", ["content-type: application/grpc+proto"])).status).toBe(505);
  });
});

describe("connect-node clients on the Connect port", () => {
  // Built per test: the port is known only after beforeAll.
  const transports = {
    "Connect over HTTP/1.1": () => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
    "gRPC-Web over HTTP/1.1": () => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
    "Connect over h2c": () => createConnectTransport({ baseUrl, httpVersion: "2" }),
    "gRPC over h2c": () => createGrpcTransport({ baseUrl }),
  };
  it.each(Object.entries(transports))("%s calls the handler", async (name, transport) => {
    const client = createClient(TeamService, transport());
    const protocol = name.startsWith("gRPC-Web") ? "grpc-web" : name.startsWith("gRPC") ? "grpc" : "connect";
    const response = await client.listTeams({}, { headers: { "x-test": "t" } });
    expect(response.teams[0]?.name).toBe(`${protocol}:t`);
    const error = await rejection(client.createTeam({ name: "missing" }));
    expect(error.code).toBe(Code.NotFound);
  });
});

describe("raw sockets on the Connect port", () => {
  it("takes an HTTP/2 preface split across packets, cut inside the magic", async () => {
    const exchange = await rawExchange(
      port,
      [H2_PREFACE.slice(0, 3), H2_PREFACE.slice(3, 17), H2_PREFACE.slice(17), EMPTY_SETTINGS_FRAME],
      { gapMs: 20, until: startsWithSettingsFrame },
    );
    expect(startsWithSettingsFrame(exchange.received)).toBe(true);
  });

  it("takes a preface and a request line sent one byte at a time", async () => {
    const h2 = await rawExchange(port, [...byteByByte(H2_PREFACE), EMPTY_SETTINGS_FRAME], {
      gapMs: 2,
      until: startsWithSettingsFrame,
    });
    expect(startsWithSettingsFrame(h2.received)).toBe(true);
    const h1 = await rawExchange(port, byteByByte(listTeamsRequest()), { gapMs: 2, until: answered });
    expect(h1.received.toString("latin1")).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it("serves two requests on one kept-alive HTTP/1.1 connection", async () => {
    const request = listTeamsRequest();
    const exchange = await rawExchange(port, [request, request], {
      gapMs: 50,
      until: (received) => received.toString("latin1").split("has-peer").length === 3,
    });
    expect(exchange.received.toString("latin1").match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
  });

  it("answers HTTP/1.0 and closes the connection", async () => {
    const exchange = await rawExchange(port, [listTeamsRequest("1.0")]);
    const text = exchange.received.toString("latin1");
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain("has-peer");
    expect(exchange.closedByServer).toBe(true);
  });

  it.each([
    ["binary garbage", Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a])],
    ["a line of text", "hello there\r\n\r\n"],
    ["a preface that turns into something else", "PRI * HTTP/1.1\r\n\r\n"],
    ["a preface that turns into something else at its last byte", `${H2_PREFACE.slice(0, 23)}X`],
  ])("answers %s with 400 and closes", async (_name, bytes) => {
    const exchange = await rawExchange(port, [bytes]);
    expect(exchange.received.toString("latin1")).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(exchange.closedByServer).toBe(true);
  });

  it(`closes a connection that sends nothing within the sniff timeout (${SNIFF_TIMEOUT_MS} ms here)`, async () => {
    const silent = await rawExchange(port, []);
    expect(silent).toEqual({ received: Buffer.alloc(0), closedByServer: true });
    const halfPreface = await rawExchange(port, [H2_PREFACE.slice(0, 10)]);
    expect(halfPreface).toEqual({ received: Buffer.alloc(0), closedByServer: true });
  });

  it("shrugs off clients that hang up mid-preface, and keeps serving", async () => {
    for (const cut of [1, 5, 16, 23]) {
      await rawExchange(port, [H2_PREFACE.slice(0, cut)], { hangUp: true });
    }
    await rawExchange(port, ["POST /lat"], { hangUp: true });
    expect((await curl("--http2-prior-knowledge")).status).toBe(200);
    expect((await curl("--http1.1")).status).toBe(200);
    expect(lines.filter((line) => line.level >= 50)).toEqual([]);
  });
});

describe("HTTP/1 after the sniff", () => {
  it("closes a connection whose request headers never finish, after the headers timeout", async () => {
    const own = await startServer({ http1HeadersTimeoutMs: 300 });
    try {
      // Decided HTTP/1 on its first byte, so the sniff timeout no longer applies; Node's does.
      const exchange = await rawExchange(own.port, [`POST ${LIST_TEAMS} HTTP/1.1\r\nHost: x\r\n`]);
      expect(exchange.received.toString("latin1")).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(exchange.closedByServer).toBe(true);
    } finally {
      await own.close(1_000);
    }
  });
});

describe("close", () => {
  it("resolves promptly with an idle HTTP/1.1 keep-alive connection and a silent one open", async () => {
    const own = await startServer();
    const keptAlive = rawExchange(own.port, [listTeamsRequest()], { giveUpMs: 20_000 });
    const silent = rawExchange(own.port, [], { giveUpMs: 20_000 });
    // Let both connections reach the server (the first is answered and kept alive).
    await new Promise((resolve) => setTimeout(resolve, 200));
    await own.close(5_000);
    const [first, second] = await Promise.all([keptAlive, silent]);
    expect(first.received.toString("latin1")).toContain("has-peer");
    expect(first.closedByServer).toBe(true);
    expect(second.closedByServer).toBe(true);
  });
});
