import { Code, ConnectError } from "@connectrpc/connect";

/** Why the token-service released nothing to a package (the three rules). */
export type RefusalReason =
  | "not_granted"
  | "version_mismatch"
  | "digest_mismatch"
  | "not_registered"
  | "private";

/**
 * What went wrong, as a closed set:
 * - `refused`: the keychain's rules released nothing to this package (see `reason`);
 * - `unauthenticated`: the keychain secret is unknown, revoked, disabled or expired;
 * - `not_released`: `key(name)` asked for a name that was not released (the
 *   package does not declare it, the keychain does not grant or store it);
 * - `corrupt`: a stored secret failed authentication at the token-service (DATA_LOSS);
 * - `unavailable`: the token-service could not be asked, or keychains are off there.
 */
export type KeychainErrorCode = "refused" | "unauthenticated" | "not_released" | "corrupt" | "unavailable";

const REASONS: readonly RefusalReason[] = [
  "not_granted",
  "version_mismatch",
  "digest_mismatch",
  "not_registered",
  "private",
];

/**
 * The one error `@latchkey/keychain` throws. Its message never holds a secret
 * value or a keychain secret.
 *
 * @example
 * ```ts
 * try {
 *   context.keychain.key("STRIPE_SECRET_KEY");
 * } catch (error) {
 *   if (error instanceof KeychainError && error.code === "not_released") …
 * }
 * ```
 */
export class KeychainError extends Error {
  override readonly name = "KeychainError";
  constructor(
    readonly code: KeychainErrorCode,
    message: string,
    /** For `refused`: which rule refused. */
    readonly reason?: RefusalReason,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A ResolveSecrets failure as a {@link KeychainError}. */
export function keychainErrorFrom(error: unknown): KeychainError {
  if (error instanceof KeychainError) return error;
  const connect = ConnectError.from(error);
  switch (connect.code) {
    case Code.PermissionDenied: {
      const reason = REASONS.find((each) => connect.rawMessage.startsWith(`${each}: `));
      return new KeychainError("refused", connect.rawMessage, reason, { cause: error });
    }
    case Code.Unauthenticated:
      return new KeychainError("unauthenticated", connect.rawMessage, undefined, { cause: error });
    case Code.DataLoss:
      return new KeychainError("corrupt", connect.rawMessage, undefined, { cause: error });
    default:
      return new KeychainError("unavailable", `ResolveSecrets failed: ${connect.rawMessage}`, undefined, {
        cause: error,
      });
  }
}
