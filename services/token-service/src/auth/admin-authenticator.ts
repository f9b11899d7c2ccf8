import { Code, ConnectError } from "@connectrpc/connect";
import { hashToken, type KeyFormats, MAX_TOKEN_LENGTH, missingScopes, parseTokenWith } from "@latchkey/token";
import type { Kysely } from "kysely";
import type { Database } from "../db/tables.js";
import { findKeyByHash } from "../keys/key.repository.js";
import { keyUsability } from "../keys/key-usability.js";
import { type Principal, ROOT_ACTOR } from "./principal.js";
import { isRootKey, type RootCredential } from "./root-key.js";

const BEARER = /^Bearer +(\S+) *$/i;

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

/** Authenticates the bearer key of an admin call. */
export interface AdminAuthenticator {
  /** The caller's {@link Principal}; rejects with a ConnectError when the header does not name one. */
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
      const invalid = new ConnectError(
        "the bearer key is not valid (unknown, revoked, disabled or expired)",
        Code.Unauthenticated,
      );
      if (!parseTokenWith(formats, token).ok) throw invalid;
      const row = await findKeyByHash(db, hash);
      if (!row || !keyUsability(row, Date.now()).usable) throw invalid;
      if (missingScopes(row.scopes, ["admin"]).length > 0) {
        throw new ConnectError("the bearer key lacks scope 'admin'", Code.PermissionDenied);
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
  if (header === null) throw new ConnectError(missing, Code.Unauthenticated);
  if (header.length > MAX_TOKEN_LENGTH + 16) {
    throw new ConnectError("the Authorization header is too long", Code.Unauthenticated);
  }
  const token = BEARER.exec(header)?.[1];
  if (token === undefined) {
    throw new ConnectError("the Authorization header must be 'Bearer <key>'", Code.Unauthenticated);
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
