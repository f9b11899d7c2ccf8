import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { TeamService } from "@latchkey/proto";
import { recordAudit } from "../audit/audit.repository.js";
import { assertRoot } from "../auth/admin-authenticator.js";
import type { TeamRow } from "../db/tables.js";
import { newTeamId } from "../ids.js";
import { requireKeyFormat } from "../keys/key-format-choice.js";
import { registerService, type ServiceRegistration } from "../server/shared/service-registration.js";
import { insertTeam, listTeams } from "../teams/team.repository.js";
import { beginAdminCall } from "./admin-call.js";
import { decodePageToken, pageOf } from "./page-token.js";
import type { ServiceDeps } from "./service-deps.js";
import { pageSize, requireName } from "./validate.js";

function teamFromRow(row: TeamRow) {
  return {
    id: row.id,
    name: row.name,
    createTime: timestampFromDate(row.created_at),
    keyFormat: row.key_format ?? "",
  };
}

/**
 * TeamService: CreateTeam and ListTeams, both for the root key only.
 *
 * @example
 * ```ts
 * createConnectServer({ services: [createTeamService(deps)], ... });
 * ```
 */
export function createTeamService(deps: ServiceDeps): ServiceRegistration {
  return registerService(TeamService, {
    async createTeam(request, ctx) {
      const principal = await beginAdminCall(deps, ctx, request);
      assertRoot(principal);
      const name = requireName(request.name);
      const keyFormat =
        request.keyFormat === "" ? null : requireKeyFormat(deps, request.keyFormat, "key_format");
      const row = await deps.db.transaction().execute(async (trx) => {
        const inserted = await insertTeam(trx, { id: newTeamId(), name, key_format: keyFormat });
        if (!inserted)
          throw new ConnectError(`a team named ${JSON.stringify(name)} already exists`, Code.AlreadyExists);
        await recordAudit(trx, {
          actor: principal.actor,
          action: "team.create",
          teamId: inserted.id,
          requestId: ctx.requestId,
          details: keyFormat === null ? { name } : { name, keyFormat },
        });
        return inserted;
      });
      deps.logger.info({ teamId: row.id, requestId: ctx.requestId }, "team created");
      return { team: teamFromRow(row) };
    },

    async listTeams(request, ctx) {
      assertRoot(await beginAdminCall(deps, ctx, request));
      const limit = pageSize(request.pageSize);
      const rows = await listTeams(deps.db, { limit, after: decodePageToken(request.pageToken) });
      const { page, nextPageToken } = pageOf(rows, limit);
      return { teams: page.map(teamFromRow), nextPageToken };
    },
  });
}
