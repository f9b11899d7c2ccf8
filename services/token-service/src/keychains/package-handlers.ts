import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type GrantPackageRequest,
  type GrantPackageResponseSchema,
  KeyEventType,
  type ListGrantsRequest,
  type ListGrantsResponseSchema,
  type RegisterPackageVersionRequest,
  type RegisterPackageVersionResponseSchema,
  type RevokeGrantRequest,
  type RevokeGrantResponseSchema,
} from "@latchkey/proto";
import type { Transaction } from "kysely";
import { recordAudit } from "../audit/audit.repository.js";
import type { Principal } from "../auth/principal.js";
import type { ApiKeyRow, Database } from "../db/tables.js";
import { invalidateKeys } from "../keys/key-invalidation.js";
import { enqueueKeyEvents } from "../outbox/outbox.repository.js";
import { beginAdminCall, requestedTeam } from "../rpc/admin-call.js";
import type { ServiceDeps } from "../rpc/service-deps.js";
import { invalidArgument, rejectUnknownFields } from "../rpc/validate.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import { findTeam } from "../teams/team.repository.js";
import {
  assertNotRevoked,
  recordKeychainChange,
  requireKeyring,
  visibleKeychain,
} from "./keychain-access.js";
import { grantFromRow, packageVersionFromRow } from "./keychain-mapper.js";
import {
  requireDeclared,
  requireKeychainId,
  requireNames,
  requirePackageName,
  requireSha256,
  requireVersion,
} from "./keychain-validate.js";
import {
  claimPackage,
  deleteGrant,
  findPackageOwner,
  findPackageVersion,
  insertPackageVersion,
  listGrants,
  setPackageVersionPublic,
  upsertGrant,
} from "./package.repository.js";
import { hex } from "./release-rules.js";

/**
 * RegisterPackageVersion: a package name belongs to the team that registered
 * it first; its versions are registered by the root key or that team's admins.
 * A version's digest and declared names never change (a changed package is a
 * new version, or a digest mismatch); registering it again may only change
 * `public`. Turning a version private drops resolved secrets from caches of
 * every keychain that grants the package.
 */
export async function registerPackageVersion(
  deps: ServiceDeps,
  request: RegisterPackageVersionRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof RegisterPackageVersionResponseSchema>> {
  requireKeyring(deps);
  const principal = await beginAdminCall(deps, ctx, request);
  const given = request.packageVersion;
  if (given === undefined) throw invalidArgument("package_version", "is required");
  rejectUnknownFields(given, "RegisterPackageVersionRequest.package_version");
  const name = requirePackageName(given.name, "package_version.name");
  const version = requireVersion(given.version, "package_version.version");
  const sha256 = requireSha256(given.sha256, "package_version.sha256");
  const required = requireDeclared(given.required, "package_version.required");
  // The team a new package name is claimed for: an admin key's own; the root key must name one.
  const teamId = requestedTeam(principal, request.teamId);
  const outcome = await deps.db.transaction().execute(async (trx) => {
    let owner = await findPackageOwner(trx, name, true);
    if (owner === undefined) {
      if (!(await findTeam(trx, teamId))) throw new ConnectError(`team ${teamId} not found`, Code.NotFound);
      if (!(await claimPackage(trx, name, teamId))) {
        throw new ConnectError(`package ${name} was registered concurrently; try again`, Code.Aborted);
      }
      owner = teamId;
    }
    if (principal.kind === "admin" && principal.teamId !== owner) {
      throw new ConnectError(
        `package_version.name: package ${name} belongs to another team; only its admins register its versions`,
        Code.PermissionDenied,
      );
    }
    const existing = await findPackageVersion(trx, name, version);
    if (existing === undefined) {
      const inserted = await insertPackageVersion(trx, {
        package_name: name,
        version,
        public: given.public,
        sha256,
        required,
        registered_by: principal.actor,
      });
      if (inserted === undefined) {
        throw new ConnectError(`${name}@${version} was registered concurrently; try again`, Code.Aborted);
      }
      await auditRegistration(trx, principal, ctx, owner, {
        name,
        version,
        public: given.public,
        created: true,
      });
      return { row: inserted, owner, created: true, dropped: [] as ApiKeyRow[] };
    }
    if (hex(existing.sha256) !== hex(sha256) || !sameDeclared(existing.required, required)) {
      throw new ConnectError(
        `${name}@${version} is registered with other contents (sha256 ${hex(existing.sha256)}); a version ` +
          "never changes: register a new version",
        Code.AlreadyExists,
      );
    }
    if (existing.public === given.public) return { row: existing, owner, created: false, dropped: [] };
    const row = await setPackageVersionPublic(trx, name, version, given.public);
    const dropped = given.public ? [] : await grantingKeys(trx, name);
    await enqueueKeyEvents(trx, KeyEventType.KEYCHAIN_CHANGED, dropped);
    await auditRegistration(trx, principal, ctx, owner, {
      name,
      version,
      public: given.public,
      created: false,
    });
    return { row, owner, created: false, dropped };
  });
  if (outcome.dropped.length > 0) invalidateKeys(deps, outcome.dropped);
  deps.logger.info(
    {
      package: name,
      version,
      public: outcome.row.public,
      created: outcome.created,
      requestId: ctx.requestId,
    },
    "package version registered",
  );
  return { packageVersion: packageVersionFromRow(outcome.row, outcome.owner), created: outcome.created };
}

function sameDeclared(
  a: readonly { name: string; description: string }[],
  b: readonly { name: string; description: string }[],
): boolean {
  const text = (list: readonly { name: string; description: string }[]) =>
    JSON.stringify([...list].map((entry) => [entry.name, entry.description]).sort());
  return text(a) === text(b);
}

/** The keys of the live keychains that grant `packageName`, for their KEYCHAIN_CHANGED events. */
async function grantingKeys(trx: Transaction<Database>, packageName: string): Promise<ApiKeyRow[]> {
  return trx
    .selectFrom("keychain_grants as g")
    .innerJoin("keychains as c", "c.id", "g.keychain_id")
    .innerJoin("api_keys as k", "k.id", "c.key_id")
    .selectAll("k")
    .where("g.package_name", "=", packageName)
    .where("k.revoked_at", "is", null)
    .execute();
}

async function auditRegistration(
  trx: Transaction<Database>,
  principal: Principal,
  ctx: RpcContext,
  teamId: string,
  details: Record<string, unknown>,
): Promise<void> {
  await recordAudit(trx, {
    actor: principal.actor,
    action: "package.register",
    teamId,
    requestId: ctx.requestId,
    details,
  });
}

/**
 * GrantPackage: pins one package of a keychain to a registered, public
 * version and its digest, with the names to share. Names the version does
 * not declare are stored (they say what the owner chose) and reported; the
 * release rules never give them out.
 */
export async function grantPackage(
  deps: ServiceDeps,
  request: GrantPackageRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof GrantPackageResponseSchema>> {
  requireKeyring(deps);
  const principal = await beginAdminCall(deps, ctx, request);
  const keychainId = requireKeychainId(request.keychainId);
  const packageName = requirePackageName(request.packageName);
  const version = requireVersion(request.version);
  const sha256 = requireSha256(request.sha256);
  const names = requireNames(request.names, "names");
  const { grant, key, undeclared } = await deps.db.transaction().execute(async (trx) => {
    const keychain = await visibleKeychain(trx, principal, keychainId, true);
    assertNotRevoked(keychain);
    const registered = await findPackageVersion(trx, packageName, version);
    // Another team's private version is not shown to exist.
    const visible =
      registered !== undefined &&
      (registered.public || principal.kind === "root" || registered.team_id === principal.teamId);
    if (!visible) {
      throw new ConnectError(
        `version: ${packageName}@${version} is not a registered package version`,
        Code.NotFound,
      );
    }
    if (!registered.public) {
      throw new ConnectError(
        `package_name: ${packageName}@${version} is not public; only public packages may receive secrets`,
        Code.FailedPrecondition,
      );
    }
    if (hex(registered.sha256) !== hex(sha256)) {
      throw new ConnectError(
        `sha256: ${packageName}@${version} is registered with sha256 ${hex(registered.sha256)}, not ${hex(sha256)}`,
        Code.FailedPrecondition,
      );
    }
    const declared = new Set(registered.required.map((entry) => entry.name));
    const undeclared = names.filter((each) => !declared.has(each));
    const grant = await upsertGrant(trx, {
      keychain_id: keychainId,
      package_name: packageName,
      version,
      sha256,
      names,
      granted_by: principal.actor,
    });
    const key = await recordKeychainChange(trx, {
      keychain,
      principal,
      ctx,
      action: "keychain.grant",
      details: { package: packageName, version, sha256: hex(sha256), names, undeclared },
    });
    return { grant, key, undeclared };
  });
  invalidateKeys(deps, [key]);
  deps.logger.info(
    { keychainId, package: packageName, version, actor: principal.actor, requestId: ctx.requestId },
    "keychain grant set",
  );
  return { grant: grantFromRow(grant), undeclaredNames: undeclared };
}

/** RevokeGrant: removes a keychain's grant for a package (allowed on a revoked keychain); NOT_FOUND when absent. */
export async function revokeGrant(
  deps: ServiceDeps,
  request: RevokeGrantRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof RevokeGrantResponseSchema>> {
  requireKeyring(deps);
  const principal = await beginAdminCall(deps, ctx, request);
  const keychainId = requireKeychainId(request.keychainId);
  const packageName = requirePackageName(request.packageName);
  const key = await deps.db.transaction().execute(async (trx) => {
    const keychain = await visibleKeychain(trx, principal, keychainId, true);
    if (!(await deleteGrant(trx, keychainId, packageName))) {
      throw new ConnectError(`keychain ${keychainId} has no grant for ${packageName}`, Code.NotFound);
    }
    return recordKeychainChange(trx, {
      keychain,
      principal,
      ctx,
      action: "keychain.grant.revoke",
      details: { package: packageName },
    });
  });
  invalidateKeys(deps, [key]);
  deps.logger.info(
    { keychainId, package: packageName, actor: principal.actor, requestId: ctx.requestId },
    "keychain grant revoked",
  );
  return {};
}

/** ListGrants: a keychain's grants, by package name. */
export async function listKeychainGrants(
  deps: ServiceDeps,
  request: ListGrantsRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof ListGrantsResponseSchema>> {
  requireKeyring(deps);
  const principal = await beginAdminCall(deps, ctx, request);
  const keychainId = requireKeychainId(request.keychainId);
  const keychain = await visibleKeychain(deps.db, principal, keychainId);
  const rows = await listGrants(deps.db, keychainId);
  await recordAudit(deps.db, {
    actor: principal.actor,
    action: "keychain.grant.list",
    teamId: keychain.team_id,
    keyId: keychain.key_id,
    requestId: ctx.requestId,
    details: { keychainId, packages: rows.map((row) => row.package_name) },
  });
  return { grants: rows.map(grantFromRow) };
}
