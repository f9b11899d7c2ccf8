import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { KeySchema, VerifyRequestSchema, VerifyResponseSchema, VerifyResult } from "@latchkey/proto";
import {
  CheckRequestSchema,
  CheckResponseSchema,
  HeaderValueOption_HeaderAppendAction,
} from "@latchkey/proto/envoy";

// The yardstick of bench:verify and bench:extauthz: a grpc-js server whose Verify and Envoy Check
// handlers do no work at all beyond reading the request (protobuf-es, as the real ones do) and
// answer a fixed response of the same shape, serialized once.

const response = Buffer.from(
  toBinary(
    VerifyResponseSchema,
    create(VerifyResponseSchema, {
      result: VerifyResult.VALID,
      key: create(KeySchema, {
        id: "key_0000000000000000000000",
        teamId: "team_0000000000000000000000",
        name: "bench",
        scopes: ["write"],
        environment: "live",
        hint: "lk_live_…abcd",
        enabled: true,
        createdBy: "root",
      }),
    }),
  ),
);

const checkResponse = Buffer.from(
  toBinary(
    CheckResponseSchema,
    create(CheckResponseSchema, {
      status: { code: 0 },
      httpResponse: {
        case: "okResponse",
        value: {
          headers: [
            ["x-latchkey-key-id", "key_0000000000000000000000"],
            ["x-latchkey-team-id", "team_0000000000000000000000"],
            ["x-latchkey-scopes", "read"],
            ["x-latchkey-key-name", "bench"],
            ["x-latchkey-environment", "live"],
          ].map(([key, value]) => ({
            header: { key, value },
            appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
          })),
          headersToRemove: ["authorization"],
        },
      },
    }),
  ),
);

const server = new Server();
server.addService(
  {
    verify: {
      path: "/latchkey.v1.TokenService/Verify",
      requestStream: false,
      responseStream: false,
      requestSerialize: (value: Buffer) => value,
      requestDeserialize: (bytes: Buffer) => fromBinary(VerifyRequestSchema, bytes),
      responseSerialize: (value: Buffer) => value,
      responseDeserialize: (bytes: Buffer) => bytes,
    },
  },
  { verify: (_call: unknown, callback: (error: null, value: Buffer) => void) => callback(null, response) },
);
server.addService(
  {
    check: {
      path: "/envoy.service.auth.v3.Authorization/Check",
      requestStream: false,
      responseStream: false,
      requestSerialize: (value: Buffer) => value,
      requestDeserialize: (bytes: Buffer) => fromBinary(CheckRequestSchema, bytes),
      responseSerialize: (value: Buffer) => value,
      responseDeserialize: (bytes: Buffer) => bytes,
    },
  },
  {
    check: (_call: unknown, callback: (error: null, value: Buffer) => void) => callback(null, checkResponse),
  },
);
server.bindAsync(
  `127.0.0.1:${process.env.PORT ?? "0"}`,
  ServerCredentials.createInsecure(),
  (error, port) => {
    if (error) throw error;
    process.stdout.write(`trivial grpc server listening on ${port}\n`);
  },
);
process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
