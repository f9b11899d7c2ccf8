import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { KeySchema, VerifyRequestSchema, VerifyResponseSchema, VerifyResult } from "@latchkey/proto";

// The yardstick of bench:verify: a grpc-js server whose Verify handler does no
// work at all and answers a fixed VALID response of the same shape.

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
server.bindAsync(
  `127.0.0.1:${process.env.PORT ?? "0"}`,
  ServerCredentials.createInsecure(),
  (error, port) => {
    if (error) throw error;
    process.stdout.write(`trivial grpc server listening on ${port}\n`);
  },
);
process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
