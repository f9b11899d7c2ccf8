/**
 * The verifier SDK: verify Latchkey API keys from any Node service, with a
 * bounded cache that key events invalidate within milliseconds, and within
 * `maxStaleMs` when the event feed is cut off.
 */

/** The outcomes {@link UsageRecorder.record} counts (re-exported from `@latchkey/proto`). */
export { UsageOutcome } from "@latchkey/proto";
export {
  createGrpcJsVerifyClient,
  type GrpcJsVerifyClientOptions,
  parseGrpcAddress,
  VERIFY_METHOD_PATH,
} from "./grpc-js-verify-client.js";
export { effectiveScopes, hasScopes } from "./has-scopes.js";
export {
  createUsageRecorder,
  type UsageRecorder,
  type UsageRecorderOptions,
  type UsageRecorderStats,
} from "./usage-recorder.js";
export { createVerifier, type Verifier, type VerifierStatus } from "./verifier.js";
export { hashCacheKey, tokenCacheKey } from "./verifier-cache.js";
export type { EvictionReason } from "./verifier-metrics.js";
export type { VerifierOptions, VerifyOptions } from "./verifier-options.js";
export { createConnectVerifyClient, type VerifyCallOptions, type VerifyClient } from "./verify-client.js";
export type {
  KeyInvalidation,
  KeyRateLimit,
  OutcomeSource,
  VerifiedKey,
  VerifiedUsageLimit,
  VerifyCode,
  VerifyOutcome,
} from "./verify-outcome.js";
