import { timingSafeEqual } from "node:crypto";
import { hashToken } from "@latchkey/token";

/** Shortest shared secret accepted: anything shorter can be guessed online. */
export const MIN_SECRET_LENGTH = 16;

/** The secrets a `secret` rule accepts, as SHA-256 digests. */
export interface SecretDigests {
  readonly current: Buffer;
  /** The secret being rotated out; undefined when none. */
  readonly previous: Buffer | undefined;
  /** When the previous secret stops being accepted (ms since the epoch); Infinity without an end. */
  readonly previousUntilMs: number;
}

/** A secret rule's fields as written (after the schema). */
interface SecretFields {
  readonly secretEnv?: string | undefined;
  readonly secret?: string | undefined;
  readonly previousSecretEnv?: string | undefined;
  readonly previousSecret?: string | undefined;
  readonly previousSecretUntil?: string | undefined;
}

/** Where problems and warnings go, and the environment secrets are read from. */
interface SecretContext {
  readonly env: NodeJS.ProcessEnv;
  readonly problems: string[];
  readonly warnings: string[];
}

/**
 * Reads a secret rule's secrets once, at start: each from its environment
 * variable when that is set (the environment wins, as in Opengram's
 * `OPENGRAM_INSTANCE_SECRET`), else from the policy file. A missing or short
 * secret is a problem naming where it was looked for; never the secret itself.
 */
export function resolveSecrets(fields: SecretFields, label: string, context: SecretContext): SecretDigests {
  const current =
    resolveOne(fields.secretEnv, fields.secret, "secretEnv", "secret", label, context, true) ?? "";
  // The previous secret is optional even when named: set its variable for the rotation window and
  // unset it afterwards, without editing the file. Unset means fewer secrets accepted, never more.
  const previous = resolveOne(
    fields.previousSecretEnv,
    fields.previousSecret,
    "previousSecretEnv",
    "previousSecret",
    label,
    context,
    false,
  );
  const previousUntilMs =
    fields.previousSecretUntil === undefined
      ? Number.POSITIVE_INFINITY
      : Date.parse(fields.previousSecretUntil);
  if (previous !== undefined && previousUntilMs <= Date.now()) {
    context.warnings.push(
      `${label}: previousSecretUntil ${fields.previousSecretUntil} has passed; only the current secret is accepted`,
    );
  }
  return {
    current: hashToken(current),
    previous: previous === undefined ? undefined : hashToken(previous),
    previousUntilMs,
  };
}

function resolveOne(
  envName: string | undefined,
  fileValue: string | undefined,
  envField: string,
  fileField: string,
  label: string,
  context: SecretContext,
  required: boolean,
): string | undefined {
  const fromEnv = envName === undefined ? undefined : context.env[envName];
  if (fromEnv !== undefined && fromEnv !== "") {
    if (fromEnv.length < MIN_SECRET_LENGTH) {
      context.problems.push(
        `${label}: ${envField}: ${envName} must hold at least ${MIN_SECRET_LENGTH} characters`,
      );
    }
    return fromEnv;
  }
  if (fileValue === undefined) {
    if (required) context.problems.push(`${label}: ${envField}: environment variable ${envName} is not set`);
    return undefined;
  }
  if (fileValue.length < MIN_SECRET_LENGTH) {
    context.problems.push(`${label}: ${fileField}: must hold at least ${MIN_SECRET_LENGTH} characters`);
  }
  return fileValue;
}

/**
 * Whether `value` is one of the accepted secrets at `nowMs`. Its digest is
 * compared in constant time with every configured secret, whichever matches
 * and whether or not the previous one has expired, so the time taken does not
 * tell a caller which secret (if any) it sent.
 *
 * @example
 * ```ts
 * secretMatches(rule.access.secrets, presented, Date.now()); // true or false
 * ```
 */
export function secretMatches(secrets: SecretDigests, value: string, nowMs: number): boolean {
  const digest = hashToken(value);
  const current = timingSafeEqual(digest, secrets.current);
  // Compared even when expired or absent (against the current digest again): the same work every time.
  const previous = timingSafeEqual(digest, secrets.previous ?? secrets.current);
  const previousOpen = secrets.previous !== undefined && nowMs < secrets.previousUntilMs;
  return current || (previous && previousOpen);
}
