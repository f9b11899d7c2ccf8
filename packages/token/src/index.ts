/**
 * Latchkey's key format: `<prefix>_<env>_<secret><checksum>`. Pure functions,
 * no I/O.
 */

export { BASE62_ALPHABET, encodeBase62Fixed, randomBase62 } from "./base62.js";
export { gitleaksRules } from "./gitleaks-rules.js";
export {
  issuableError,
  KEY_FORMAT_KINDS,
  type KeyFormat,
  KeyFormatConfigError,
  type KeyFormatKind,
  type KeyFormatSpec,
  SIGNING_KID_PATTERN,
  validateKeyFormats,
} from "./key-format.js";
export {
  assertIssuable,
  bodySource,
  createKeyFormats,
  defaultKeyFormatSpecs,
  type FormatParseOutcome,
  type FormatRejection,
  formatHint,
  generateTokenWith,
  type KeyFormats,
  type NewTokenOptions,
  parseTokenWith,
} from "./key-formats.js";
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
  type CheckedSignedBody,
  checkSignedBody,
  type SignedClaims,
  type SignedRejection,
  type SigningKey,
  type SigningKeySpec,
  signClaims,
  validateSigningKeys,
} from "./signed-token.js";
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
export { findTokensWith, formatSource, tokenPatternFor } from "./token-scanner.js";
