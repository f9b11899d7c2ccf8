import { Code, ConnectError } from "@connectrpc/connect";
import {
  formatHint,
  hashToken,
  type KeyFormats,
  MAX_TOKEN_LENGTH,
  missingScopes,
  parseTokenWith,
} from "@latchkey/token";
import type { Kysely } from "kysely";
import type { Database } from "../db/tables.js";
import { findKeyByHash } from "../keys/key.repository.js";
import { keyUsability } from "../keys/key-usability.js";
import { type Principal, ROOT_ACTOR } from "./principal.js";
import { isRootKey, type RootCredential } from "./root-key.js";

const BEARER = /^Bearer +(\S+) *$/i;
const TOO_LONG = MAX_TOKEN_LENGTH + 16;

/** Options of {@link createAdminAuthenticator}. */
export interface AdminAuthenticatorOptions {
  /** Where admin keys are looked up by token hash. */
  readonly db: Kysely<Database>;
  /** The root key's hash. */
  readonly root: RootCredential;
  /** The key prefix, so a malformed bearer value is refused before any lookup. */
  /** The accepted key formats: a bearer key matching none is refused before any lookup. */
  readonly formats: KeyFormats;
}

/**
 * A refused admin credential: the ConnectError the caller gets, plus, for the
 * audit log only, the key it named when that key exists (revoked, disabled,
 * expired, or without scope `admin`). Never on the wire: the message is the
 * same whether the key exists or not.
 */
export class AdminCredentialError extends ConnectError {
  constructor(
    message: string,
    code: Code.Unauthenticated | Code.PermissionDenied,
    /** The presented key, when it exists. */
    readonly presentedKey?: { readonly id: string; readonly teamId: string },
  ) {
    super(message, code);
  }
}

/** Authenticates the bearer key of an admin call. */
export interface AdminAuthenticator {
  /** The caller's {@link Principal}; rejects with an {@link AdminCredentialError} when the header does not name one. */
  authenticate(headers: Headers): Promise<Principal>;
}

/**
 * Turns an `Authorization: Bearer …` header into a {@link Principal}: the root
 * key (constant-time hash comparison) or a usable key (see `keyUsability`)
 * with scope `admin`. Every refusal is a ConnectError whose message says what
 * to fix without saying whether a given key exists.
 *
 * @example
 * ```ts
 * const auth = createAdminAuthenticator({ db, root, formats });
 * const principal = await auth.authenticate(ctx.requestHeader);
 * ```
 */
export function createAdminAuthenticator(options: AdminAuthenticatorOptions): AdminAuthenticator {
  const { db, root, formats } = options;
  return {
    async authenticate(headers) {
      const token = bearerToken(headers, "admin RPCs need 'Authorization: Bearer <root or admin key>'");
      const hash = hashToken(token);
      if (isRootKey(root, hash)) return { kind: "root", actor: ROOT_ACTOR };
      const message = "the bearer key is not valid (unknown, revoked, disabled or expired)";
      if (!parseTokenWith(formats, token).ok) throw new AdminCredentialError(message, Code.Unauthenticated);
      const row = await findKeyByHash(db, hash);
      if (!row) throw new AdminCredentialError(message, Code.Unauthenticated);
      const presented = { id: row.id, teamId: row.team_id };
      if (!keyUsability(row, Date.now()).usable) {
        throw new AdminCredentialError(message, Code.Unauthenticated, presented);
      }
      if (missingScopes(row.scopes, ["admin"]).length > 0) {
        throw new AdminCredentialError(
          "the bearer key lacks scope 'admin'",
          Code.PermissionDenied,
          presented,
        );
      }
      return { kind: "admin", actor: row.id, teamId: row.team_id, scopes: row.scopes };
    },
  };
}

/**
 * The key in an `Authorization: Bearer <key>` header, refused with
 * UNAUTHENTICATED when the header is missing (`missing` says what the RPC
 * needs), too long, or not a Bearer credential. Nothing is looked up.
 */
export function bearerToken(headers: Headers, missing: string): string {
  const header = headers.get("authorization");
  if (header === null) throw new AdminCredentialError(missing, Code.Unauthenticated);
  if (header.length > TOO_LONG) {
    throw new AdminCredentialError("the Authorization header is too long", Code.Unauthenticated);
  }
  const token = BEARER.exec(header)?.[1];
  if (token === undefined) {
    throw new AdminCredentialError("the Authorization header must be 'Bearer <key>'", Code.Unauthenticated);
  }
  return token;
}

/**
 * Refuses an admin key acting on another team. Root may act on any team.
 * The message does not confirm that the other team exists.
 */
export function assertTeamAccess(principal: Principal, teamId: string): void {
  if (principal.kind === "admin" && principal.teamId !== teamId) {
    throw new ConnectError("an admin key manages the keys of its own team only", Code.PermissionDenied);
  }
}

/** Refuses anything but the root key. */
export function assertRoot(principal: Principal): void {
  if (principal.kind !== "root") throw new ConnectError("this RPC needs the root key", Code.PermissionDenied);
}

/** What an admin call presented as its credential, for the audit log of a refused call: never the key. */
export interface PresentedCredential {
  /** `missing` (no Authorization header), `malformed` (not `Bearer <key>`, or no configured format), or `key`. */
  readonly kind: "missing" | "malformed" | "key";
  /** For `key`: its display hint (`lk_live_…Xa0b`: the format's prefix and the last four characters). */
  readonly hint?: string;
}

/**
 * Describes the bearer credential in `headers` without keeping it: a value
 * that parses as a key of a configured format is reduced to its hint, the
 * same hint Get and List show for a key; anything else is only `malformed`,
 * since a string that is not a key (a password pasted by mistake) has no
 * part that is safe to keep.
 *
 * @example
 * ```ts
 * presentedCredential(new Headers({ authorization: `Bearer ${token}` }), formats); // { kind: "key", hint: "lk_live_…Xa0b" }
 * ```
 */
export function presentedCredential(headers: Headers, formats: KeyFormats): PresentedCredential {
  const header = headers.get("authorization");
  if (header === null) return { kind: "missing" };
  const token = header.length > TOO_LONG ? undefined : BEARER.exec(header)?.[1];
  const parsed = token === undefined ? undefined : parseTokenWith(formats, token);
  if (token === undefined || parsed === undefined || !parsed.ok) return { kind: "malformed" };
  return { kind: "key", hint: formatHint(parsed.format, token) };
}
