/**
 * Generated protobuf-es code for the gRPC ecosystem services Latchkey serves
 * beside its own API: health checking (`grpc.health.v1`) and server reflection
 * (`grpc.reflection.v1` and `v1alpha`). The two reflection versions share
 * their message names, so each is a namespace.
 *
 * @example
 * ```ts
 * import { Health, reflectionV1 } from "@latchkey/proto/grpc";
 * ```
 */

export * from "./gen/grpc/health/v1/health_pb.js";
export * as reflectionV1 from "./gen/grpc/reflection/v1/reflection_pb.js";
export * as reflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
