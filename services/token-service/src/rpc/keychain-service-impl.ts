import { KeychainService } from "@latchkey/proto";
import { createKeychain, listTeamKeychains, revokeKeychain } from "../keychains/keychain-handlers.js";
import {
  grantPackage,
  listKeychainGrants,
  registerPackageVersion,
  revokeGrant,
} from "../keychains/package-handlers.js";
import { resolveSecrets } from "../keychains/resolve-secrets.js";
import { listSecretNames, putSecret, removeSecret } from "../keychains/secret-handlers.js";
import { registerService, type ServiceRegistration } from "../server/shared/service-registration.js";
import type { ServiceDeps } from "./service-deps.js";

/**
 * KeychainService, written once and mounted on both listeners (with health
 * and reflection, like TokenService and TeamService).
 *
 * @example
 * ```ts
 * createGrpcServer({ services: [createKeychainService(deps)], ... });
 * ```
 */
export function createKeychainService(deps: ServiceDeps): ServiceRegistration {
  return registerService(KeychainService, {
    createKeychain: (request, ctx) => createKeychain(deps, request, ctx),
    listKeychains: (request, ctx) => listTeamKeychains(deps, request, ctx),
    revokeKeychain: (request, ctx) => revokeKeychain(deps, request, ctx),
    putSecret: (request, ctx) => putSecret(deps, request, ctx),
    listSecretNames: (request, ctx) => listSecretNames(deps, request, ctx),
    deleteSecret: (request, ctx) => removeSecret(deps, request, ctx),
    registerPackageVersion: (request, ctx) => registerPackageVersion(deps, request, ctx),
    grantPackage: (request, ctx) => grantPackage(deps, request, ctx),
    revokeGrant: (request, ctx) => revokeGrant(deps, request, ctx),
    listGrants: (request, ctx) => listKeychainGrants(deps, request, ctx),
    resolveSecrets: (request, ctx) => resolveSecrets(deps, request, ctx),
  });
}
