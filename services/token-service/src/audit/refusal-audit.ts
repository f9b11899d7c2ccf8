import { Code, ConnectError } from "@connectrpc/connect";
import type { KeyFormats } from "@latchkey/token";
import { AdminCredentialError, presentedCredential } from "../auth/admin-authenticator.js";
import { ANONYMOUS_ACTOR } from "../auth/principal.js";
import { principalOf } from "../rpc/admin-call.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import type { AnyMethodImplementation, ServiceRegistration } from "../server/shared/service-registration.js";
import type { RefusedCallRecorder } from "./refused-call-recorder.js";

/** Options of {@link auditRefusals}. */
export interface RefusalAuditOptions {
  readonly recorder: RefusedCallRecorder;
  /** To reduce a presented key to its hint. */
  readonly formats: KeyFormats;
  /** Methods (`localName`) that are not admin calls and are left as they are (`verify`). */
  readonly exempt?: readonly string[];
}

/**
 * The registration with every unary admin method wrapped so that a call
 * refused as UNAUTHENTICATED or PERMISSION_DENIED, wherever in the handler the
 * refusal is raised, is handed to the recorder: the procedure, the code and
 * message, who called (the authenticated principal, or the presented key when
 * it exists but may not act), and the presented credential's hint, never the
 * credential. The caller's answer is unchanged. One wrapper for both
 * listeners, since both mount the same registrations.
 *
 * @example
 * ```ts
 * const apps = [createTokenService(deps), createTeamService(deps)].map((r) =>
 *   auditRefusals(r, { recorder, formats, exempt: ["verify"] }));
 * ```
 */
export function auditRefusals(
  registration: ServiceRegistration,
  options: RefusalAuditOptions,
): ServiceRegistration {
  const exempt = new Set(options.exempt ?? []);
  const implementation: Record<string, AnyMethodImplementation> = { ...registration.implementation };
  for (const method of registration.service.methods) {
    const inner = registration.implementation[method.localName];
    if (inner === undefined || exempt.has(method.localName) || method.methodKind !== "unary") continue;
    const procedure = `${registration.service.typeName}/${method.name}`;
    const call = (inner as (input: unknown, ctx: RpcContext) => unknown).bind(registration.implementation);
    implementation[method.localName] = (async (input: unknown, ctx: RpcContext) => {
      try {
        return await call(input, ctx);
      } catch (error) {
        if (error instanceof ConnectError && isRefusal(error.code)) record(options, procedure, ctx, error);
        throw error;
      }
    }) as AnyMethodImplementation;
  }
  return { service: registration.service, implementation };
}

function isRefusal(code: Code): code is Code.Unauthenticated | Code.PermissionDenied {
  return code === Code.Unauthenticated || code === Code.PermissionDenied;
}

function record(options: RefusalAuditOptions, procedure: string, ctx: RpcContext, error: ConnectError): void {
  const principal = principalOf(ctx);
  const presented = error instanceof AdminCredentialError ? error.presentedKey : undefined;
  const credential = presentedCredential(ctx.requestHeader, options.formats);
  options.recorder.record({
    procedure,
    code: error.code === Code.Unauthenticated ? "unauthenticated" : "permission_denied",
    message: error.rawMessage,
    actor: principal?.actor ?? presented?.id ?? ANONYMOUS_ACTOR,
    teamId: principal?.kind === "admin" ? principal.teamId : presented?.teamId,
    credential: credential.kind,
    keyHint: credential.hint,
    requestId: ctx.requestId,
    peer: ctx.peer,
  });
}
