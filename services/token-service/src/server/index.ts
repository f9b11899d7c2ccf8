/**
 * The token-service's serving layer: one set of RPC implementations, written
 * against {@link RpcContext}, mounted on a connect-node listener (Connect,
 * gRPC, gRPC-Web) and a grpc-js listener (native gRPC), with gRPC health and
 * server reflection on both.
 */

export { connectRoutes } from "./connect-routes.js";
export { type ConnectServerOptions, createConnectServer } from "./connect-server.js";
export { createErrorInterceptor, toPublicError } from "./error-interceptor.js";
export { createGrpcServer, type GrpcServerOptions } from "./grpc-server.js";
export { createHealthService, type HealthService, ServingStatus } from "./health.js";
export { createLoggingInterceptor } from "./logging-interceptor.js";
export { createReflectionServices } from "./reflection.js";
export { REQUEST_ID_HEADER } from "./request-id.js";
export type { RpcContext, RpcProtocol } from "./rpc-context.js";
export {
  DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
  type ListenOptions,
  type RunningServer,
  type TlsOptions,
} from "./running-server.js";
export {
  type BiDiStreamingImplementation,
  type ClientStreamingImplementation,
  type MethodImplementation,
  registerService,
  type ServerStreamingImplementation,
  type ServiceImplementation,
  type ServiceRegistration,
  type UnaryImplementation,
} from "./service-registration.js";
