import { Code, ConnectError } from "@connectrpc/connect";
import { assertTeamAccess } from "../auth/admin-authenticator.js";
import type { Principal } from "../auth/principal.js";
import type { ApiKeyRow } from "../db/tables.js";
import { findKeyById } from "../keys/key.repository.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import type { ServiceDeps } from "./service-deps.js";
import { rejectUnknownFields, requireTeamId } from "./validate.js";

// Who made each call, once authenticated: read by the audit of refused calls (audit/refusal-audit.ts),
// since a permission is refused after authentication, deep in a handler.
const principals = new WeakMap<RpcContext, Principal>();

/**
 * The start of every admin RPC: authenticate the bearer key, then refuse
 * unknown fields (named after the request message).
 */
export async function beginAdminCall(
  deps: ServiceDeps,
  ctx: RpcContext,
  request: { readonly $typeName: string; $unknown?: ReadonlyArray<{ no: number }> },
): Promise<Principal> {
  const principal = await deps.auth.authenticate(ctx.requestHeader);
  principals.set(ctx, principal);
  rejectUnknownFields(request, request.$typeName.replace(/^latchkey\.v1\./, ""));
  return principal;
}

/** The principal {@link beginAdminCall} authenticated for this call; undefined before or without it. */
export function principalOf(ctx: RpcContext): Principal | undefined {
  return principals.get(ctx);
}

/** NotFound for a key that is absent or belongs to a team the caller may not see. */
export function keyNotFound(keyId: string): ConnectError {
  return new ConnectError(`key ${keyId} not found`, Code.NotFound);
}

/** Loads a key the caller may see (a team admin sees its own team's keys only), or NOT_FOUND. */
export async function visibleKey(
  db: Parameters<typeof findKeyById>[0],
  principal: Principal,
  keyId: string,
  forUpdate = false,
): Promise<ApiKeyRow> {
  const row = await findKeyById(db, keyId, forUpdate);
  if (!row || (principal.kind === "admin" && principal.teamId !== row.team_id)) throw keyNotFound(keyId);
  return row;
}

/** Loads and locks a key for change inside a transaction, hiding other teams' keys. */
export function lockKey(
  trx: Parameters<typeof findKeyById>[0],
  principal: Principal,
  keyId: string,
): Promise<ApiKeyRow> {
  return visibleKey(trx, principal, keyId, true);
}

/**
 * The team a request names, checked against the caller: an admin key may leave it empty for its own
 * team; the root key must name one.
 */
export function requestedTeam(principal: Principal, teamId: string): string {
  const team = teamId === "" && principal.kind === "admin" ? principal.teamId : requireTeamId(teamId);
  assertTeamAccess(principal, team);
  return team;
}
