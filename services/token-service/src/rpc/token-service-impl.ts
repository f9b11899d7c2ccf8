import { TokenService } from "@latchkey/proto";
import { importKeys } from "../import/import-keys.js";
import { registerService, type ServiceRegistration } from "../server/shared/service-registration.js";
import { getUsage } from "../usage/usage-handlers.js";
import { getKey, listTeamKeys, updateKeyFields } from "./key-admin-handlers.js";
import { issueKey, revokeKey, rotateKey } from "./key-write-handlers.js";
import type { ServiceDeps } from "./service-deps.js";
import { createVerifyHandler } from "./verify-handler.js";

/**
 * TokenService, written once and mounted on both listeners.
 *
 * @example
 * ```ts
 * createGrpcServer({ services: [createTokenService(deps)], ... });
 * ```
 */
export function createTokenService(deps: ServiceDeps): ServiceRegistration {
  const verify = createVerifyHandler(deps);
  return registerService(TokenService, {
    verify: (request) => verify(request),
    issue: (request, ctx) => issueKey(deps, request, ctx),
    revoke: (request, ctx) => revokeKey(deps, request, ctx),
    rotate: (request, ctx) => rotateKey(deps, request, ctx),
    get: (request, ctx) => getKey(deps, request, ctx),
    list: (request, ctx) => listTeamKeys(deps, request, ctx),
    update: (request, ctx) => updateKeyFields(deps, request, ctx),
    getUsage: (request, ctx) => getUsage(deps, request, ctx),
    importKeys: (request, ctx) => importKeys(deps, request, ctx),
  });
}
