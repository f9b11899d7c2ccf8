/**
 * Latchkey's key format: `<prefix>_<env>_<secret><checksum>`. Pure functions,
 * no I/O.
 */

export { BASE62_ALPHABET, encodeBase62Fixed, randomBase62 } from "./base62.js";
export {
  ENVIRONMENT_PATTERN,
  isValidEnvironment,
  isValidOwner,
  OWNER_PATTERN,
  tokenEnvironment,
} from "./key-labels.js";
export {
  BUILT_IN_SCOPES,
  effectiveScopes,
  MAX_SCOPES,
  missingScopes,
  SCOPE_PATTERN,
  scopeListError,
} from "./scopes.js";
export {
  CHECKSUM_LENGTH,
  findTokens,
  generateToken,
  hashToken,
  hashTokenBase64,
  isValidPrefix,
  type KeyEnvironment,
  MAX_TOKEN_LENGTH,
  type MalformedReason,
  type ParsedToken,
  type ParseOutcome,
  parseToken,
  SECRET_LENGTH,
  TOKEN_PATTERN,
  tokenHint,
} from "./token.js";
