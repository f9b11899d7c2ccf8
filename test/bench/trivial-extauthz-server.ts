import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { CheckRequestSchema, CheckResponseSchema } from "@latchkey/proto/envoy";

// The yardstick of bench:extauthz: a grpc-js Check handler that reads the CheckRequest (protobuf-es,
// as the sidecar does) and answers a fixed OK of the shape the sidecar sends for a valid key.

const response = Buffer.from(
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
          ].map(([key, value]) => ({ header: { key, value }, appendAction: 2 })),
          headersToRemove: ["authorization"],
        },
      },
    }),
  ),
);

const server = new Server();
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
  { check: (_call: unknown, callback: (error: null, value: Buffer) => void) => callback(null, response) },
);
server.bindAsync(
  `127.0.0.1:${process.env.PORT ?? "0"}`,
  ServerCredentials.createInsecure(),
  (error, port) => {
    if (error) throw error;
    process.stdout.write(`trivial ext_authz server listening on ${port}\n`);
  },
);
process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
