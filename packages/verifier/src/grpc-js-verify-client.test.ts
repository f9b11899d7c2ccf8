import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type ServiceDefinition,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import {
  KeySchema,
  type VerifyRequest,
  VerifyRequestSchema,
  type VerifyResponse,
  VerifyResponseSchema,
  VerifyResult,
} from "@latchkey/proto";
import { generateToken } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGrpcJsVerifyClient, parseGrpcAddress, VERIFY_METHOD_PATH } from "./grpc-js-verify-client.js";
import { createVerifier } from "./verifier.js";

// A real grpc-js server on loopback, answering Verify the way the token-service's native listener does.

const definition: ServiceDefinition<UntypedServiceImplementation> = {
  Verify: {
    path: VERIFY_METHOD_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: VerifyRequest) => Buffer.from(toBinary(VerifyRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(VerifyRequestSchema, b),
    responseSerialize: (m: VerifyResponse) => Buffer.from(toBinary(VerifyResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(VerifyResponseSchema, b),
  },
};

const validToken = generateToken({ prefix: "lk", environment: "live" });
const slowToken = generateToken({ prefix: "lk", environment: "live" });
const failingToken = generateToken({ prefix: "lk", environment: "live" });
let server: Server;
let address: string;
let calls = 0;

const verify: handleUnaryCall<VerifyRequest, VerifyResponse> = (call, callback) => {
  calls += 1;
  const { token } = call.request;
  if (token === failingToken) {
    callback({ code: status.UNAVAILABLE, details: "database is down" });
  } else if (token === slowToken) {
    setTimeout(() => callback(null, create(VerifyResponseSchema, { result: VerifyResult.NOT_FOUND })), 1_000);
  } else if (token === validToken) {
    const key = create(KeySchema, { id: "key_1", teamId: "team_1", scopes: ["read"], enabled: true });
    callback(null, create(VerifyResponseSchema, { result: VerifyResult.VALID, key }));
  } else {
    callback(null, create(VerifyResponseSchema, { result: VerifyResult.NOT_FOUND }));
  }
};

beforeAll(async () => {
  server = new Server();
  server.addService(definition, { Verify: verify });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
});

describe("createGrpcJsVerifyClient", () => {
  it("calls Verify and decodes the answer", async () => {
    const client = createGrpcJsVerifyClient({ address: `http://${address}` });
    try {
      const response = await client.verify(create(VerifyRequestSchema, { token: validToken }), {
        timeoutMs: 2_000,
      });
      expect(response.result).toBe(VerifyResult.VALID);
      expect(response.key?.id).toBe("key_1");
    } finally {
      client.close();
    }
  });

  it("rejects with a ConnectError carrying the gRPC status", async () => {
    const client = createGrpcJsVerifyClient({ address });
    try {
      const failed = client.verify(create(VerifyRequestSchema, { token: failingToken }), {
        timeoutMs: 2_000,
      });
      await expect(failed).rejects.toBeInstanceOf(ConnectError);
      await expect(failed).rejects.toMatchObject({ code: Code.Unavailable, rawMessage: "database is down" });
      const late = client.verify(create(VerifyRequestSchema, { token: slowToken }), { timeoutMs: 50 });
      await expect(late).rejects.toMatchObject({ code: Code.DeadlineExceeded });
      const controller = new AbortController();
      const cancelled = client.verify(create(VerifyRequestSchema, { token: slowToken }), {
        timeoutMs: 2_000,
        signal: controller.signal,
      });
      controller.abort();
      await expect(cancelled).rejects.toMatchObject({ code: Code.Canceled });
    } finally {
      client.close();
    }
  });

  it("reports Unavailable when nothing listens", async () => {
    const client = createGrpcJsVerifyClient({ address: "127.0.0.1:1" });
    try {
      await expect(
        client.verify(create(VerifyRequestSchema, { token: validToken }), { timeoutMs: 2_000 }),
      ).rejects.toMatchObject({ code: Code.Unavailable });
    } finally {
      client.close();
    }
  });

  it("parses plain and URL addresses", () => {
    expect(parseGrpcAddress("token-service:8082")).toEqual({ target: "token-service:8082", tls: false });
    expect(parseGrpcAddress("http://token-service:8082")).toEqual({
      target: "token-service:8082",
      tls: false,
    });
    expect(parseGrpcAddress("https://token-service:8082/")).toEqual({
      target: "token-service:8082",
      tls: true,
    });
  });
});

describe("createVerifier over grpc-js", () => {
  it("verifies through the tokenService address and caches the answer", async () => {
    const verifier = createVerifier({ tokenService: `http://${address}`, healthProbeIntervalMs: 0 });
    try {
      const before = calls;
      expect(await verifier.verify(validToken, { requiredScopes: ["read"] })).toMatchObject({ ok: true });
      expect(await verifier.verify(validToken, { requiredScopes: ["read"] })).toMatchObject({ cached: true });
      expect(await verifier.verify(failingToken)).toMatchObject({ code: "UNAVAILABLE" });
      expect(calls - before).toBe(2);
    } finally {
      await verifier.close();
    }
  });
});
