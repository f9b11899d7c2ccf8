import { Code, ConnectError } from "@connectrpc/connect";
import { formatHint, generateTokenWith, issuableError, type KeyEnvironment } from "@latchkey/token";
import type { ServiceDeps } from "../rpc/service-deps.js";
import { invalidArgument } from "../rpc/validate.js";

/** A new key's token with what its row records about the format. */
export interface NewToken {
  readonly token: string;
  readonly hint: string;
  readonly format: string;
  readonly signing_kid: string | null;
}

/**
 * The name of a format a request or a team asks for, checked against the
 * deployment's `keyFormats`: it must be configured and fit to issue.
 *
 * @throws ConnectError INVALID_ARGUMENT naming `field`.
 */
export function requireKeyFormat(deps: Pick<ServiceDeps, "formats">, name: string, field: string): string {
  const format = deps.formats.byName(name);
  if (format === undefined) {
    const known = deps.formats.formats.map((each) => each.name).join(", ");
    throw invalidArgument(field, `names no configured key format (configured: ${known})`);
  }
  const unissuable = issuableError(format);
  if (unissuable !== undefined) throw invalidArgument(field, unissuable);
  return name;
}

/**
 * The format a new key is issued in: the request's, else its team's, else the
 * deployment's default. Rotate passes no request format, so a replacement
 * follows its team (an imported or foreign-format key is replaced by one of
 * the team's format).
 *
 * @throws ConnectError FAILED_PRECONDITION when the team's stored format is no longer configured.
 */
export function chooseKeyFormat(
  deps: Pick<ServiceDeps, "formats" | "keyFormat">,
  requested: string,
  teamFormat: string | null,
): string {
  if (requested !== "") return requireKeyFormat(deps, requested, "format");
  if (teamFormat !== null && teamFormat !== "") {
    if (deps.formats.byName(teamFormat) === undefined) {
      throw new ConnectError(
        `the team's key format ${teamFormat} is not in this deployment's keyFormats`,
        Code.FailedPrecondition,
      );
    }
    return teamFormat;
  }
  return deps.keyFormat;
}

/**
 * Makes the token of a new key in format `name`. A signed key carries its id,
 * team, scopes and expiry, signed by the active signing key.
 */
export function newTokenFor(
  deps: Pick<ServiceDeps, "formats">,
  name: string,
  key: {
    readonly id: string;
    readonly teamId: string;
    readonly scopes: readonly string[];
    readonly environment: KeyEnvironment;
    readonly expiresAt: Date | null;
  },
): NewToken {
  const format = deps.formats.byName(name);
  if (format === undefined)
    throw new ConnectError(`key format ${name} is not configured`, Code.FailedPrecondition);
  let token: string;
  try {
    token = generateTokenWith(deps.formats, name, {
      environment: key.environment,
      claims: {
        keyId: key.id,
        teamId: key.teamId,
        scopes: key.scopes,
        ...(key.expiresAt ? { expiresAt: key.expiresAt.getTime() } : {}),
      },
    });
  } catch (error) {
    // Too many scopes for a signed key's 512 characters: the caller's input, said plainly.
    throw invalidArgument("scopes", (error as Error).message);
  }
  const signingKid =
    format.kind === "signed" ? (deps.formats.signingKeys.find((k) => k.active)?.kid ?? null) : null;
  return { token, hint: formatHint(format, token), format: name, signing_kid: signingKid };
}
