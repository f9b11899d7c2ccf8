import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { Agent } from "node:https";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { TeamService } from "@latchkey/proto";
import { Health } from "@latchkey/proto/grpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestPki, type TestPki } from "../../../../../test/harness/certificates.js";
import { startTestServers, type TestServers } from "../../../test-support/test-servers.js";
import { ServingStatus } from "./health.js";

let pki: TestPki;
let ca: Buffer;
let servers: TestServers;
beforeAll(async () => {
  // A throw-away CA and a certificate for 127.0.0.1.
  pki = await createTestPki("connect-tls");
  const { certFile, keyFile } = await pki.issue("server", ["IP:127.0.0.1", "DNS:localhost"]);
  ca = await readFile(pki.caFile);
  servers = await startTestServers({ cert: await readFile(certFile), key: await readFile(keyFile) });
});
afterAll(async () => {
  await servers.close();
  pki.dispose();
});

describe("with TLS", () => {
  const baseUrl = () => `https://127.0.0.1:${servers.connect.port}`;

  it.each([
    [
      "Connect over HTTP/1.1",
      () => createConnectTransport({ baseUrl: baseUrl(), httpVersion: "1.1", nodeOptions: { ca } }),
    ],
    [
      "gRPC-Web over HTTP/1.1",
      () => createGrpcWebTransport({ baseUrl: baseUrl(), httpVersion: "1.1", nodeOptions: { ca } }),
    ],
    [
      "Connect over HTTP/2",
      () => createConnectTransport({ baseUrl: baseUrl(), httpVersion: "2", nodeOptions: { ca } }),
    ],
    ["gRPC over HTTP/2", () => createGrpcTransport({ baseUrl: baseUrl(), nodeOptions: { ca } })],
  ])("the connect listener serves %s", async (_name, transport) => {
    const response = await createClient(TeamService, transport()).createTeam({ name: "tls" });
    expect(response.team?.name).toMatch(/^tls\//);
  });

  it("the grpc-js listener serves gRPC over TLS", async () => {
    const transport = createGrpcTransport({
      baseUrl: `https://127.0.0.1:${servers.grpc.port}`,
      nodeOptions: { ca },
    });
    expect((await createClient(Health, transport).check({})).status).toBe(ServingStatus.SERVING);
  });

  it("ALPN picks HTTP/1.1 or HTTP/2 for curl, and gRPC over HTTP/1.1 is refused with 505", async () => {
    const curl = async (...args: string[]) =>
      (
        await promisify(execFile)("curl", [
          "-sS",
          "--cacert",
          pki.caFile,
          "-o",
          "/dev/null",
          "-w",
          "%{http_code} %{http_version}",
          ...args,
          `${baseUrl()}/latchkey.v1.TeamService/ListTeams`,
        ])
      ).stdout;
    const json = ["-H", "content-type: application/json", "-d", "{}"];
    expect(await curl("--http1.1", ...json)).toBe("200 1.1");
    expect(await curl("--http2", ...json)).toBe("200 2");
    expect(await curl("--http1.1", "-H", "content-type: application/grpc", "-d", "")).toBe("505 1.1");
  });

  it("closes with an idle HTTP/1.1 keep-alive connection open, without waiting for its drain timeout", async () => {
    const agent = new Agent({ keepAlive: true, ca });
    const transport = createConnectTransport({
      baseUrl: baseUrl(),
      httpVersion: "1.1",
      nodeOptions: { ca, agent },
    });
    await createClient(TeamService, transport).listTeams({});
    const [idle] = Object.values(agent.freeSockets).flat();
    expect(idle?.destroyed).toBe(false);
    const closed = new Promise((resolve) => idle?.once("close", resolve));
    const started = performance.now();
    await servers.close(5_000);
    expect(performance.now() - started).toBeLessThan(2_000);
    await closed; // the server ended the idle connection rather than leaving it to the client
    agent.destroy();
  });
});
