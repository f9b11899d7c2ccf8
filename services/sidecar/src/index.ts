/**
 * The Latchkey gateway sidecar: an HTTP reverse proxy and forward-auth endpoint
 * that checks API keys (through `@latchkey/verifier`) in front of an existing app.
 */

export { createSidecarLogger } from "./access-log.js";
export {
  ENFORCEMENT_MODES,
  type EnforcementMode,
  loadSidecarConfig,
  parseSidecarConfig,
  SIDECAR_ENV,
  type SidecarConfig,
  type SidecarConfigInput,
  sidecarConfigSchema,
  type TrustedProxies,
} from "./config.js";
export { FORWARD_AUTH_PATH } from "./forward-auth.js";
export type { KeyChecker, KeyCheckOptions } from "./key-checker.js";
export { type NormalizedPath, normalizePath, type PathRejection } from "./policy/normalize-path.js";
export {
  compilePolicy,
  loadPolicy,
  type Policy,
  PolicyError,
  type RouteAccess,
  type RouteRule,
} from "./policy/policy.js";
export { PRESET_NAMES, type PresetName } from "./policy/policy-schema.js";
export { type SidecarHandle, type StartSidecarOptions, startSidecar } from "./sidecar.js";
