import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AuditService, KeychainService, TeamService, TokenService } from "@latchkey/proto";

/** Typed clients of the token-service's RPCs, each call carrying the signed-in admin key. */
export interface Api {
  readonly tokens: Client<typeof TokenService>;
  readonly teams: Client<typeof TeamService>;
  readonly audit: Client<typeof AuditService>;
  readonly keychains: Client<typeof KeychainService>;
}

/**
 * Clients for the RPCs the token-service already serves on this origin (Connect protocol, binary,
 * POST): the console has no API of its own, so it can do exactly what the key can do over `buf curl`.
 * The key travels only in the `Authorization` header: never a cookie (`credentials: "omit"`), never a
 * URL (no Connect GET), never a referrer.
 *
 * @example
 * ```ts
 * const api = createApi(adminKey);
 * const { teams } = await api.teams.listTeams({ pageSize: 50 });
 * ```
 */
export function createApi(adminKey: string, baseUrl: string = location.origin): Api {
  const bearer: Interceptor = (next) => (request) => {
    request.header.set("authorization", `Bearer ${adminKey}`);
    return next(request);
  };
  const transport = createConnectTransport({
    baseUrl,
    useBinaryFormat: true,
    interceptors: [bearer],
    fetch: (input, init) =>
      fetch(input, { ...init, credentials: "omit", referrerPolicy: "no-referrer", cache: "no-store" }),
  });
  return {
    tokens: createClient(TokenService, transport),
    teams: createClient(TeamService, transport),
    audit: createClient(AuditService, transport),
    keychains: createClient(KeychainService, transport),
  };
}

/** Whether an error is the server refusing the key itself (signed out, revoked, disabled). */
export function isUnauthenticated(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.Unauthenticated;
}

/**
 * A sentence for a failed call: the server's message (it names the field at fault) with its code,
 * or a network failure said plainly.
 */
export function describeError(error: unknown): string {
  // The console's own checks (a metadata line without `=`) throw plain errors with a sentence.
  if (!(error instanceof ConnectError)) return error instanceof Error ? error.message : String(error);
  const connect = error;
  switch (connect.code) {
    case Code.Unauthenticated:
      return `The admin key was refused: ${connect.rawMessage}`;
    case Code.PermissionDenied:
      return `Not allowed with this key: ${connect.rawMessage}`;
    case Code.Unavailable:
    case Code.Unknown:
      return `The token-service could not be reached or failed to answer (${connect.rawMessage}). Try again.`;
    default:
      return `${connect.rawMessage} (${Code[connect.code]})`;
  }
}
