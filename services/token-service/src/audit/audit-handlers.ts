import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type AuditEventSchema, AuditService, type ListAuditEventsRequest } from "@latchkey/proto";
import { assertTeamAccess } from "../auth/admin-authenticator.js";
import { ANONYMOUS_ACTOR, ROOT_ACTOR } from "../auth/principal.js";
import { isKeyId } from "../ids.js";
import { beginAdminCall } from "../rpc/admin-call.js";
import { decodeSequencePageToken, encodeSequencePageToken } from "../rpc/page-token.js";
import type { ServiceDeps } from "../rpc/service-deps.js";
import { invalidArgument, optionalInstant, pageSize, requireKeyId, requireTeamId } from "../rpc/validate.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import { registerService, type ServiceRegistration } from "../server/shared/service-registration.js";
import { type AuditQuery, type AuditRow, listAuditEntries } from "./audit.repository.js";

/**
 * AuditService: ListAuditEvents, for the root key (every team, and entries
 * without one) and for team admin keys (their own team's entries only, as
 * List shows their own team's keys only).
 *
 * @example
 * ```ts
 * createConnectServer({ services: [createAuditService(deps)], ... });
 * ```
 */
export function createAuditService(deps: ServiceDeps): ServiceRegistration {
  return registerService(AuditService, {
    listAuditEvents: (request, ctx) => listAuditEvents(deps, request, ctx),
  });
}

/** ListAuditEvents: newest first, paged by id, filtered by team, key, actor, action and time. */
async function listAuditEvents(deps: ServiceDeps, request: ListAuditEventsRequest, ctx: RpcContext) {
  const principal = await beginAdminCall(deps, ctx, request);
  let teamId: string | undefined;
  if (request.teamId !== "") {
    teamId = requireTeamId(request.teamId);
    assertTeamAccess(principal, teamId);
  } else if (principal.kind === "admin") {
    teamId = principal.teamId;
  }
  const start = optionalInstant(request.startTime, "start_time");
  const end = optionalInstant(request.endTime, "end_time");
  if (start !== undefined && end !== undefined && end <= start) {
    throw invalidArgument("end_time", "must be after start_time");
  }
  const limit = pageSize(request.pageSize);
  const query: AuditQuery = {
    teamId,
    keyId: request.keyId === "" ? undefined : requireKeyId(request.keyId),
    actor: request.actor === "" ? undefined : requireActor(request.actor),
    action: request.action === "" ? undefined : requireAction(request.action),
    start: start === undefined ? undefined : new Date(start),
    end: end === undefined ? undefined : new Date(end),
    beforeId: decodeSequencePageToken(request.pageToken),
    limit,
  };
  const rows = await listAuditEntries(deps.db, query);
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    events: page.map(eventFromRow),
    nextPageToken: rows.length > limit && last !== undefined ? encodeSequencePageToken(last.id) : "",
  };
}

/** Audit actions are lower-case words joined by dots (`key.revoke`, `call.permission_denied`). */
const ACTION = /^[a-z][a-z_]*(?:\.[a-z][a-z_]*)*$/;

function requireAction(value: string): string {
  if (value.length <= 64 && ACTION.test(value)) return value;
  throw invalidArgument(
    "action",
    "must be lower-case words joined by dots (key.revoke, or key for every key.*)",
  );
}

function requireActor(value: string): string {
  if (value === ROOT_ACTOR || value === ANONYMOUS_ACTOR || isKeyId(value)) return value;
  throw invalidArgument(
    "actor",
    "must be root, anonymous or a key id (key_ followed by 22 letters or digits)",
  );
}

function eventFromRow(row: AuditRow): MessageInitShape<typeof AuditEventSchema> {
  return {
    id: row.id,
    createTime: timestampFromDate(row.created_at),
    actor: row.actor,
    action: row.action,
    teamId: row.team_id ?? "",
    keyId: row.key_id ?? "",
    requestId: row.request_id ?? "",
    details: row.details as JsonObject,
  };
}
