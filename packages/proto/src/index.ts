/**
 * Generated protobuf-es code for Latchkey's API. Everything under `gen/` is
 * produced by `buf generate` from `proto/` and `proto-vendor/`; this file only
 * re-exports it. The gRPC health and reflection services are exported from
 * `@latchkey/proto/grpc` (see `grpc.ts`).
 */

export * from "./gen/latchkey/v1/audit_pb.js";
export * from "./gen/latchkey/v1/key_event_pb.js";
export * from "./gen/latchkey/v1/key_pb.js";
export * from "./gen/latchkey/v1/keychain_service_pb.js";
export * from "./gen/latchkey/v1/team_pb.js";
export * from "./gen/latchkey/v1/token_service_pb.js";
export * from "./gen/latchkey/v1/usage_pb.js";
