import { fileURLToPath } from "node:url";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  type ClientUnaryCall,
  credentials,
  loadPackageDefinition,
  Metadata,
  type ServiceClientConstructor,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { TeamService } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  captureLogger,
  createGate,
  createTestTeams,
  LEAKY_MESSAGE,
  rejection,
  startTestServers,
  type TestServers,
} from "../../../test-support/test-servers.js";
import { createGrpcServer } from "./grpc-server.js";

const protoDir = fileURLToPath(new URL("../../../../../proto", import.meta.url));

/** A plain grpc-js client for TeamService, from the .proto file like any third-party caller. */
function grpcJsClient(port: number) {
  const definition = loadSync("latchkey/v1/team.proto", { includeDirs: [protoDir] });
  const loaded = loadPackageDefinition(definition) as unknown as {
    latchkey: { v1: { TeamService: ServiceClientConstructor } };
  };
  const client = new loaded.latchkey.v1.TeamService(`127.0.0.1:${port}`, credentials.createInsecure());
  const call = (method: string, request: object, metadata = new Metadata()) =>
    new Promise<{ response?: Record<string, unknown>; error?: ServiceError; header?: Metadata }>(
      (resolve) => {
        let header: Metadata | undefined;
        const unary = (client as unknown as Record<string, (...args: unknown[]) => ClientUnaryCall>)[method];
        const pending = unary?.call(
          client,
          request,
          metadata,
          (error: ServiceError | null, response: Record<string, unknown>) =>
            resolve(
              error ? { error, ...(header ? { header } : {}) } : { response, ...(header ? { header } : {}) },
            ),
        );
        pending?.on("metadata", (m: Metadata) => {
          header = m;
        });
      },
    );
  return { call, close: () => client.close() };
}

let servers: TestServers;
let client: ReturnType<typeof grpcJsClient>;
beforeAll(async () => {
  servers = await startTestServers();
  client = grpcJsClient(servers.grpc.port);
});
afterAll(async () => {
  client.close();
  await servers.close();
});

describe("the grpc-js listener", () => {
  it("serves a grpc-js client, with metadata as headers and the peer", async () => {
    const metadata = new Metadata();
    metadata.set("x-test", "from-grpc-js");
    metadata.set("trace-bin", Buffer.from([0, 1, 2]));
    const { response } = await client.call("listTeams", {}, metadata);
    expect(response).toMatchObject({
      teams: [{ name: "grpc-native:from-grpc-js" }],
      nextPageToken: "has-peer",
    });
  });

  it("keeps a sane x-request-id and sends it back as response metadata", async () => {
    const metadata = new Metadata();
    metadata.set("x-request-id", "grpc-req-1");
    const { response, header } = await client.call("createTeam", { name: "alpha" }, metadata);
    expect(response).toMatchObject({ team: { id: "grpc-req-1", name: "alpha/grpc-native" } });
    expect(header?.get("x-request-id")).toEqual(["grpc-req-1"]);
  });

  it("sends a fresh request id as response metadata when the client sends none, and logs it", async () => {
    const { response, header } = await client.call("createTeam", { name: "alpha" });
    const [sent] = header?.get("x-request-id") ?? [];
    expect(sent).toMatch(/^[A-Za-z0-9_-]{12}-[0-9a-z]+$/);
    expect(response).toMatchObject({ team: { id: sent } });
    await vi.waitFor(() =>
      expect(servers.lines.find((l) => l.msg === "rpc" && l.requestId === sent)).toMatchObject({
        procedure: "latchkey.v1.TeamService/CreateTeam",
        code: "ok",
        protocol: "grpc-native",
      }),
    );
  });

  it("maps a ConnectError to the same gRPC status with its message", async () => {
    const { error } = await client.call("createTeam", { name: "missing" });
    expect(error?.code).toBe(status.NOT_FOUND);
    expect(error?.details).toBe("no such team");
  });

  it("maps any other error to INTERNAL with no detail, and logs the cause", async () => {
    const metadata = new Metadata();
    metadata.set("x-request-id", "grpc-boom");
    const { error } = await client.call("createTeam", { name: "boom" }, metadata);
    expect(error?.code).toBe(status.INTERNAL);
    expect(error?.details).toBe("internal error");
    expect(JSON.stringify(error?.metadata.toJSON())).not.toContain("hunter2");
    const logged = servers.lines.find(
      (l) => l.msg === "rpc failed with an unexpected error" && l.requestId === "grpc-boom",
    );
    expect((logged?.err as { message?: string } | undefined)?.message).toBe(LEAKY_MESSAGE);
    const call = servers.lines.find((l) => l.msg === "rpc" && l.requestId === "grpc-boom");
    expect(call).toMatchObject({
      procedure: "latchkey.v1.TeamService/CreateTeam",
      code: "Internal",
      protocol: "grpc-native",
    });
  });

  it("refuses a request larger than 64 KiB", async () => {
    const { error } = await client.call("createTeam", { name: "x".repeat(70 * 1024) });
    expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
  });

  it("serves connect's gRPC client too", async () => {
    const teams = createClient(
      TeamService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${servers.grpc.port}` }),
    );
    const error = await rejection(teams.createTeam({ name: "missing" }));
    expect(error.code).toBe(Code.NotFound);
    expect(await teams.createTeam({ name: "beta" })).toMatchObject({ team: { name: "beta/grpc-native" } });
  });
});

describe("grpc close", () => {
  it("lets an in-flight call finish, then resolves although the client stays connected", async () => {
    const { logger } = captureLogger();
    const gate = createGate();
    const server = await createGrpcServer({
      services: [createTestTeams(gate)],
      listen: { host: "127.0.0.1", port: 0 },
      logger,
    });
    const slowClient = grpcJsClient(server.port);
    await slowClient.call("listTeams", {});
    const slow = slowClient.call("createTeam", { name: "slow" });
    await gate.entered;
    let closed = false;
    const closing = server.close(30_000).then(() => {
      closed = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    gate.open();
    expect((await slow).response).toMatchObject({ team: { name: "slow/grpc-native" } });
    await closing;
    slowClient.close();
  });

  it("cancels a call that outlives the timeout and still resolves", async () => {
    const { logger } = captureLogger();
    const gate = createGate();
    const server = await createGrpcServer({
      services: [createTestTeams(gate)],
      listen: { host: "127.0.0.1", port: 0 },
      logger,
    });
    const stuckClient = grpcJsClient(server.port);
    const stuck = stuckClient.call("createTeam", { name: "slow" });
    await gate.entered;
    await server.close(0);
    // The call is cut off, not answered: grpc-js resets its stream (CANCELLED), or the connection
    // goes first (UNAVAILABLE).
    const { error, response } = await stuck;
    expect(response).toBeUndefined();
    expect([status.CANCELLED, status.UNAVAILABLE]).toContain(error?.code);
    stuckClient.close();
  });
});
