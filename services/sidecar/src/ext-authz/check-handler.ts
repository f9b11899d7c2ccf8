import type { CheckRequest, CheckResponse } from "@latchkey/proto/envoy";
import { traceLogFields } from "@latchkey/telemetry";
import type { Decision } from "../decision.js";
import type { ProxyContext } from "../proxy/proxy-context.js";
import { countRefusedEarly, decideRequest, logRequest, whenDecided } from "../proxy/request-decision.js";
import { badPath, type Refusal, UNAVAILABLE } from "../refusal.js";
import { startRequestSpan } from "../request-span.js";
import { readCheckRequest } from "./check-request.js";
import { allowedResponse, deniedResponse } from "./check-response.js";
import { ENVOY_PATH_SETTINGS, PATH_NOT_NORMALIZED, UNTRUSTED_CHECK } from "./ext-authz-refusals.js";

/**
 * Answers one Check: `caller` is the gRPC peer's address (Envoy), `respond`
 * is called once with the answer (a message, or one already serialized),
 * synchronously when the decision is local (a cached key, a public route).
 */
export type CheckHandler = (
  check: CheckRequest,
  caller: string,
  respond: (response: CheckResponse | Uint8Array) => void,
  abortable?: { readonly signal: AbortSignal },
) => void;

// Refusals of a path that Envoy's own normalization would have changed: a missing Envoy setting.
const NOT_NORMALIZED = new Set<Refusal>([badPath("not_canonical"), badPath("encoded_separator")]);
const WARN_EVERY_MS = 60_000;

/**
 * The ext_authz entry point on the sidecar's one decision path: a Check is
 * read into the request it describes (`check-request.ts`), decided by
 * `decideRequest` exactly as forward-auth decides (policy, credential,
 * verifier cache, rate limits, counted once by `settleDecision`), and answered
 * OK with the identity headers and the removals proxy mode would make, or
 * denied with proxy mode's refusal (`check-response.ts`). Only trusted
 * proxies may ask; in log mode every request is allowed, without identity
 * when it would have been refused.
 *
 * @example
 * ```ts
 * const check = createCheckHandler(context);
 * check(request, "127.0.0.1", (response) => callback(null, response));
 * ```
 */
export function createCheckHandler(context: ProxyContext): CheckHandler {
  let lastWarning = Number.NEGATIVE_INFINITY;
  const envoyRefusal = (refusal: Refusal): Refusal => {
    if (!NOT_NORMALIZED.has(refusal)) return refusal;
    const now = Date.now();
    if (now - lastWarning >= WARN_EVERY_MS) {
      lastWarning = now;
      context.logger.warn(
        `ext_authz: Envoy asked about a path it did not normalize; set ${ENVOY_PATH_SETTINGS} on its HTTP connection manager`,
      );
    }
    return PATH_NOT_NORMALIZED;
  };

  return (check, caller, respond, abortable) => {
    const read = readCheckRequest(check, caller, performance.now(), abortable);
    const { request } = read;
    const trusted = context.isTrusted(caller);
    if (context.tracing !== undefined) request.span = startRequestSpan(context.tracing, request, trusted);
    const early = trusted ? read.refusal : UNTRUSTED_CHECK;
    if (early !== undefined) {
      respond(deniedResponse(early, request.requestId));
      countRefusedEarly(context, request, early);
      return;
    }
    whenDecided(context, decideRequest(context, request), {
      decided(decision: Decision) {
        if (decision.allow || context.mode !== "enforce") {
          respond(allowedResponse(decision, read));
          logRequest(context, request, decision, 200);
        } else {
          const refusal = envoyRefusal(decision.refusal ?? UNAVAILABLE);
          respond(deniedResponse(refusal, request.requestId));
          logRequest(context, request, decision, refusal.status);
        }
      },
      failed(error) {
        context.logger.error(
          { err: error, requestId: request.requestId, ...traceLogFields(request.span) },
          "deciding a Check failed",
        );
        respond(deniedResponse(UNAVAILABLE, request.requestId));
        logRequest(context, request, undefined, UNAVAILABLE.status);
      },
    });
  };
}
