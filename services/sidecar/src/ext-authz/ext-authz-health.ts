import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type ServerUnaryCall, type ServiceDefinition, type sendUnaryData, status } from "@grpc/grpc-js";
import { Authorization } from "@latchkey/proto/envoy";
import {
  Health,
  type HealthCheckRequest,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "@latchkey/proto/grpc";

/** Names `Health/Check` answers for: the server as a whole, and the ext_authz service. */
const SERVICES = new Set(["", Authorization.typeName]);
const SERVING = Buffer.from(
  toBinary(
    HealthCheckResponseSchema,
    create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING }),
  ),
);

/**
 * `grpc.health.v1.Health/Check` for the ext_authz listener, so Envoy's gRPC
 * health checker (`grpc_health_check` on the ext_authz cluster) and a
 * Kubernetes `grpc` probe can ask this port itself. It answers SERVING while
 * the listener answers, like the admin port's `/readyz`: it does not follow
 * the token-service, since an Envoy that marks the authz cluster unhealthy
 * refuses every request, public routes and cached keys included, where the
 * sidecar would still decide them. Other service names get NOT_FOUND, as the
 * protocol asks; `Watch` is not served (UNIMPLEMENTED), which the checkers
 * above do not use.
 *
 * @example
 * ```ts
 * const { definition, implementation } = extAuthzHealth();
 * server.addService(definition, implementation);
 * ```
 */
export function extAuthzHealth(): {
  definition: ServiceDefinition;
  implementation: {
    check: (call: ServerUnaryCall<HealthCheckRequest, Buffer>, callback: sendUnaryData<Buffer>) => void;
  };
} {
  const method = Health.method.check;
  const definition: ServiceDefinition = {
    check: {
      path: `/${Health.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (message: HealthCheckRequest) =>
        Buffer.from(toBinary(HealthCheckRequestSchema, message)),
      requestDeserialize: (bytes: Buffer) => fromBinary(HealthCheckRequestSchema, bytes),
      responseSerialize: (bytes: Buffer) => bytes,
      responseDeserialize: (bytes: Buffer) =>
        fromBinary(HealthCheckResponseSchema, bytes) as unknown as HealthCheckResponse,
      originalName: "check",
    },
  };
  return {
    definition,
    implementation: {
      check(call, callback) {
        const service = call.request.service;
        if (SERVICES.has(service)) callback(null, SERVING);
        else
          callback({
            code: status.NOT_FOUND,
            details: `unknown service ${JSON.stringify(service.slice(0, 200))}`,
          });
      },
    },
  };
}
