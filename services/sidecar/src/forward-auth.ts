import type { ServerResponse } from "node:http";
import type { Decision } from "./authorize.js";
import type { LocalRoute } from "./proxy/http-proxy.js";
import { identityHeaders } from "./proxy/identity-headers.js";
import { decide, type ProxyContext, splitTarget, whenDecided } from "./proxy/proxy-context.js";
import {
  BAD_GATEWAY,
  CONFLICTING_ORIGINAL_REQUEST,
  MISSING_ORIGINAL_METHOD,
  MISSING_ORIGINAL_URI,
  type Refusal,
  sendRefusal,
  UNTRUSTED_FORWARD_AUTH,
} from "./refusal.js";

/**
 * The forward-auth endpoint on the main listener. It is an exact path the
 * proxy never forwards; anything below or beside it goes to the app as usual.
 */
export const FORWARD_AUTH_PATH = "/_latchkey/auth";

/**
 * Forward-auth for nginx `auth_request` and Traefik ForwardAuth: decides the
 * request described by `X-Original-URI` (or `X-Forwarded-Uri`) and
 * `X-Original-Method` (or `X-Forwarded-Method`; required: a default would let a
 * POST be judged as a public GET) with the
 * credentials of the headers it was sent, exactly as the proxy would. It
 * answers 200 with the `x-latchkey-*` identity headers, or the proxy's
 * 401/403/429/503 with the same bodies. Those headers are believed only from
 * `LATCHKEY_TRUSTED_PROXIES`; anyone else gets 403.
 */
const HTTP_METHOD = /^[A-Z]{1,20}$/;

export function createForwardAuthRoute(context: ProxyContext): LocalRoute {
  return (req, res, scanned, requestId, start) => {
    const method = scanned.originalMethod?.toUpperCase() ?? "";
    const log = (path: string, status: number, decision?: Decision) =>
      context.accessLog({
        requestId,
        method,
        path,
        status,
        decision: decision?.label ?? "bad_request",
        keyId: decision?.key?.id,
        teamId: decision?.key?.teamId,
        durationMs: Math.round((performance.now() - start) * 1000) / 1000,
        via: "forward-auth",
      });
    const refuse = (refusal: Refusal, path: string, decision?: Decision) => {
      sendRefusal(res, refusal, requestId);
      log(path, refusal.status, decision);
    };
    if (!context.isTrusted(req.socket.remoteAddress ?? "")) {
      context.metrics.decision("bad_request");
      refuse(UNTRUSTED_FORWARD_AUTH, "");
      return;
    }
    if (scanned.originalUri === undefined) {
      context.metrics.decision("bad_request");
      refuse(MISSING_ORIGINAL_URI, "");
      return;
    }
    if (!HTTP_METHOD.test(method)) {
      context.metrics.decision("bad_request");
      refuse(MISSING_ORIGINAL_METHOD, "");
      return;
    }
    if (scanned.originalConflict) {
      context.metrics.decision("bad_request");
      refuse(CONFLICTING_ORIGINAL_REQUEST, "");
      return;
    }
    const [rawPath, query] = splitTarget(scanned.originalUri);
    const decision = decide(context, method, rawPath, query, scanned, true);
    whenDecided(
      decision,
      (decided) => {
        context.metrics.decision(decided.label);
        if (decided.allow || context.mode !== "enforce") {
          grant(res, decided, requestId);
          log(decided.path, 200, decided);
        } else {
          refuse(decided.refusal ?? BAD_GATEWAY, decided.path, decided);
        }
      },
      (error) => {
        context.logger.error({ err: error, requestId }, "deciding a forward-auth request failed");
        refuse(BAD_GATEWAY, rawPath);
      },
    );
  };
}

function grant(res: ServerResponse, decision: Decision, requestId: string): void {
  const headers = ["content-length", "0", "cache-control", "no-store", "x-request-id", requestId];
  if (decision.allow && decision.key !== undefined) headers.push(...identityHeaders(decision.key));
  res.writeHead(200, headers);
  res.end();
}
