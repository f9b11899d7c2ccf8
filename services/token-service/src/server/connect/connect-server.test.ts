import { Code, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { TeamService } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  captureLogger,
  createGate,
  createTestTeams,
  LEAKY_MESSAGE,
  rejection,
  startTestServers,
  type TestServers,
} from "../../../test-support/test-servers.js";
import { createConnectServer } from "./connect-server.js";

let servers: TestServers;
let baseUrl: string;
beforeAll(async () => {
  servers = await startTestServers();
  baseUrl = `http://127.0.0.1:${servers.connect.port}`;
});
afterAll(() => servers.close());

const transports: Record<string, (baseUrl: string) => Transport> = {
  connect: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" }),
  grpc: (baseUrl) => createGrpcTransport({ baseUrl }),
  "grpc-web": (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
};

describe.each(Object.keys(transports))("the connect listener over %s", (protocol) => {
  const client = () => createClient(TeamService, transports[protocol]?.(baseUrl) as Transport);

  it("calls the implementation with the protocol, headers and peer in its context", async () => {
    const response = await client().listTeams({}, { headers: { "x-test": "hello" } });
    expect(response.teams[0]?.name).toBe(`${protocol}:hello`);
    expect(response.nextPageToken).toBe("has-peer");
  });

  it("keeps a sane x-request-id and echoes it", async () => {
    let echoed: string | null = null;
    const response = await client().createTeam(
      { name: "alpha" },
      { headers: { "x-request-id": "req-42.a_b" }, onHeader: (h) => (echoed = h.get("x-request-id")) },
    );
    expect(response.team?.id).toBe("req-42.a_b");
    expect(echoed).toBe("req-42.a_b");
  });

  it("replaces an unsafe x-request-id with a fresh one", async () => {
    let echoed: string | null = null;
    const response = await client().createTeam(
      { name: "alpha" },
      {
        headers: { "x-request-id": "bad id\twith spaces" },
        onHeader: (h) => (echoed = h.get("x-request-id")),
      },
    );
    expect(response.team?.id).toMatch(/^[A-Za-z0-9_-]{12}-[0-9a-z]+$/);
    expect(echoed).toBe(response.team?.id);
  });

  it("passes a ConnectError through with its code and message", async () => {
    const error = await rejection(client().createTeam({ name: "missing" }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toBe("no such team");
  });

  it("turns any other error into internal error, logging the cause and not sending it", async () => {
    const requestId = `boom-${protocol}`;
    const error = await rejection(
      client().createTeam({ name: "boom" }, { headers: { "x-request-id": requestId } }),
    );
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe("internal error");
    expect(error.metadata.get("x-request-id")).toBe(requestId);
    expect(JSON.stringify([...error.metadata])).not.toContain("hunter2");
    expect(String(error.cause ?? "")).not.toContain("hunter2");
    const logged = servers.lines.find(
      (l) => l.msg === "rpc failed with an unexpected error" && l.requestId === requestId,
    );
    expect((logged?.err as { message?: string } | undefined)?.message).toBe(LEAKY_MESSAGE);
  });
});

describe("call logs", () => {
  it("record procedure, code, duration and request id, and never the Authorization header", async () => {
    const client = createClient(TeamService, createConnectTransport({ baseUrl, httpVersion: "2" }));
    const secret = "lk_live_notarealsecretnotarealsecretnotareal";
    await client
      .createTeam(
        { name: "missing" },
        { headers: { authorization: `Bearer ${secret}`, "x-request-id": "log-1" } },
      )
      .catch(() => {});
    const line = servers.lines.find((l) => l.msg === "rpc" && l.requestId === "log-1");
    expect(line).toMatchObject({ procedure: "latchkey.v1.TeamService/CreateTeam", code: "NotFound" });
    expect(line?.durationMs).toBeTypeOf("number");
    expect(JSON.stringify(servers.lines)).not.toContain(secret);
    await client.listTeams({}, { headers: { "x-request-id": "log-2" } });
    expect(servers.lines.find((l) => l.msg === "rpc" && l.requestId === "log-2")).toMatchObject({
      code: "ok",
    });
  });
});

describe("limits", () => {
  it("refuses a request message larger than 64 KiB", async () => {
    const client = createClient(TeamService, createConnectTransport({ baseUrl, httpVersion: "2" }));
    const error = await rejection(client.createTeam({ name: "x".repeat(70 * 1024) }));
    expect(error.code).toBe(Code.ResourceExhausted);
  });
});

describe("close", () => {
  it("lets an in-flight call finish, then resolves although the client keeps its session open", async () => {
    const { logger } = captureLogger();
    const gate = createGate();
    const listen = { host: "127.0.0.1", port: 0 };
    const server = await createConnectServer({ services: [createTestTeams(gate)], listen, logger });
    const client = createClient(
      TeamService,
      createConnectTransport({ baseUrl: `http://127.0.0.1:${server.port}`, httpVersion: "2" }),
    );
    await client.listTeams({}); // an idle HTTP/2 session stays open after this
    const slow = client.createTeam({ name: "slow" });
    await gate.entered;
    let closed = false;
    const closing = server.close(30_000).then(() => {
      closed = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    gate.open();
    await expect(slow).resolves.toMatchObject({ team: { name: "slow/connect" } });
    await closing;
    await expect(client.listTeams({})).rejects.toThrow();
  });

  it("gives up on a call that outlives the timeout and still resolves", async () => {
    const { logger } = captureLogger();
    const gate = createGate();
    const server = await createConnectServer({
      services: [createTestTeams(gate)],
      listen: { host: "127.0.0.1", port: 0 },
      logger,
    });
    const client = createClient(
      TeamService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }),
    );
    const stuck = rejection(client.createTeam({ name: "slow" }));
    await gate.entered;
    await server.close(0);
    expect((await stuck).code).toBeTypeOf("number");
  });
});
