/**
 * Generated protobuf-es code for Envoy's external authorization API
 * (`envoy.service.auth.v3.Authorization`), which the sidecar serves for
 * Envoy, Istio and Envoy Gateway. Vendored from Envoy's data-plane-api with
 * the files it imports (see `proto-vendor/README.md`); only what a Check
 * server and its clients use is re-exported here.
 *
 * @example
 * ```ts
 * import { Authorization, CheckRequestSchema } from "@latchkey/proto/envoy";
 * ```
 */

export {
  type HeaderMap,
  HeaderMapSchema,
  type HeaderValue,
  type HeaderValueOption,
  HeaderValueOption_HeaderAppendAction,
  HeaderValueOptionSchema,
  HeaderValueSchema,
} from "./gen/envoy/config/core/v3/base_pb.js";
export {
  type AttributeContext,
  type AttributeContext_HttpRequest,
  AttributeContext_HttpRequestSchema,
  type AttributeContext_Peer,
  AttributeContext_PeerSchema,
  type AttributeContext_Request,
  AttributeContext_RequestSchema,
  AttributeContextSchema,
} from "./gen/envoy/service/auth/v3/attribute_context_pb.js";
export {
  Authorization,
  type CheckRequest,
  CheckRequestSchema,
  type CheckResponse,
  CheckResponseSchema,
  type DeniedHttpResponse,
  DeniedHttpResponseSchema,
  type OkHttpResponse,
  OkHttpResponseSchema,
} from "./gen/envoy/service/auth/v3/external_auth_pb.js";
export { StatusCode as HttpStatusCode } from "./gen/envoy/type/v3/http_status_pb.js";
export { type Status as RpcStatus, StatusSchema as RpcStatusSchema } from "./gen/google/rpc/status_pb.js";
