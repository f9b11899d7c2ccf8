import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { reflectionV1 as v1, reflectionV1alpha as v1alpha } from "@latchkey/proto/grpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServers, type TestServers } from "../../../test-support/test-servers.js";

const buf = fileURLToPath(new URL("../../../../../node_modules/.bin/buf", import.meta.url));
const run = promisify(execFile);

let servers: TestServers;
beforeAll(async () => {
  servers = await startTestServers();
});
afterAll(() => servers.close());

/** Sends `requests` on one v1 reflection stream and returns the answers. */
async function reflect(transport: Transport, requests: v1.ServerReflectionRequest["messageRequest"][]) {
  const client = createClient(v1.ServerReflection, transport);
  const stream = client.serverReflectionInfo(
    (async function* () {
      for (const messageRequest of requests) {
        yield create(v1.ServerReflectionRequestSchema, { host: "test", messageRequest });
      }
    })(),
  );
  const answers: v1.ServerReflectionResponse[] = [];
  for await (const answer of stream) {
    answers.push(answer);
  }
  return answers;
}

const fileNames = (answer: v1.ServerReflectionResponse | undefined) =>
  answer?.messageResponse.case === "fileDescriptorResponse"
    ? answer.messageResponse.value.fileDescriptorProto.map(
        (b) => fromBinary(FileDescriptorProtoSchema, b).name,
      )
    : [];

describe("reflection v1", () => {
  const connect = () =>
    createConnectTransport({ baseUrl: `http://127.0.0.1:${servers.connect.port}`, httpVersion: "2" });

  it("lists the served services, health and reflection included", async () => {
    const [answer] = await reflect(connect(), [{ case: "listServices", value: "" }]);
    expect(answer?.validHost).toBe("test");
    expect(
      answer?.messageResponse.case === "listServicesResponse" &&
        answer.messageResponse.value.service.map((s) => s.name),
    ).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "latchkey.v1.TeamService",
    ]);
  });

  it("sends a file after its imports, and each import once per stream", async () => {
    const answers = await reflect(connect(), [
      { case: "fileContainingSymbol", value: "latchkey.v1.TeamService.ListTeams" },
      { case: "fileContainingSymbol", value: "latchkey.v1.Team" },
      { case: "fileByFilename", value: "grpc/health/v1/health.proto" },
      { case: "fileContainingSymbol", value: "grpc.health.v1.HealthCheckResponse.ServingStatus" },
    ]);
    expect(answers.map(fileNames)).toEqual([
      ["google/protobuf/timestamp.proto", "latchkey/v1/team.proto"],
      ["latchkey/v1/team.proto"],
      ["grpc/health/v1/health.proto"],
      ["grpc/health/v1/health.proto"],
    ]);
  });

  it("answers NOT_FOUND for unknown files, symbols and extensions, and keeps the stream open", async () => {
    const answers = await reflect(connect(), [
      { case: "fileByFilename", value: "nope.proto" },
      { case: "fileContainingSymbol", value: "latchkey.v1.Nope" },
      {
        case: "fileContainingExtension",
        value: create(v1.ExtensionRequestSchema, {
          containingType: "latchkey.v1.Team",
          extensionNumber: 1000,
        }),
      },
      { case: "allExtensionNumbersOfType", value: "latchkey.v1.Team" },
    ]);
    const codes = answers.map((a) =>
      a.messageResponse.case === "errorResponse" ? a.messageResponse.value.errorCode : 0,
    );
    expect(codes).toEqual([Code.NotFound, Code.NotFound, Code.NotFound, 0]);
    expect(answers[3]?.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { extensionNumber: [] },
    });
  });

  it("answers the same on v1alpha, on the grpc-js listener", async () => {
    const client = createClient(
      v1alpha.ServerReflection,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${servers.grpc.port}` }),
    );
    const answers = [];
    for await (const answer of client.serverReflectionInfo(
      (async function* () {
        yield create(v1alpha.ServerReflectionRequestSchema, {
          messageRequest: { case: "fileContainingSymbol", value: "latchkey.v1.CreateTeamRequest" },
        });
      })(),
    )) {
      answers.push(answer);
    }
    expect(answers[0]?.messageResponse.case).toBe("fileDescriptorResponse");
    expect(answers[0]?.originalRequest?.messageRequest).toEqual({
      case: "fileContainingSymbol",
      value: "latchkey.v1.CreateTeamRequest",
    });
  });
});

describe("buf curl with no local schema", () => {
  const curl = (...args: string[]) =>
    run(buf, ["curl", "--http2-prior-knowledge", ...args], { timeout: 30_000 });

  it.each([
    ["grpc", "connect"],
    ["connect", "connect"],
    ["grpcweb", "connect"],
    ["grpc", "grpc"],
  ] as const)("calls ListTeams with --protocol %s on the %s listener", async (protocol, listener) => {
    const port = listener === "connect" ? servers.connect.port : servers.grpc.port;
    const url = `http://127.0.0.1:${port}/latchkey.v1.TeamService/ListTeams`;
    const { stdout } = await curl("--protocol", protocol, url, "-d", "{}");
    expect(JSON.parse(stdout)).toMatchObject({ teams: [{ id: "team_1" }] });
  });

  it.each(["connect", "grpc"] as const)("lists methods on the %s listener", async (listener) => {
    const port = listener === "connect" ? servers.connect.port : servers.grpc.port;
    const { stdout } = await curl("--protocol", "grpc", "--list-methods", `http://127.0.0.1:${port}`);
    expect(stdout.trim().split("\n")).toEqual(
      expect.arrayContaining([
        "latchkey.v1.TeamService/CreateTeam",
        "latchkey.v1.TeamService/ListTeams",
        "grpc.health.v1.Health/Check",
      ]),
    );
  });

  it("calls health Check through reflection", async () => {
    const url = `http://127.0.0.1:${servers.grpc.port}/grpc.health.v1.Health/Check`;
    const { stdout } = await curl("--protocol", "grpc", url, "-d", '{"service": ""}');
    expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
  });
});
