import type { ServerResponse } from "node:http";
import { traceLogFields } from "@latchkey/telemetry";
import type { Decision } from "./decision.js";
import type { LocalRoute } from "./proxy/http-proxy.js";
import { identityHeaders } from "./proxy/identity-headers.js";
import { type ProxyContext, splitTarget } from "./proxy/proxy-context.js";
import {
  countRefusedEarly,
  decideRequest,
  type IncomingRequest,
  logRequest,
  whenDecided,
} from "./proxy/request-decision.js";
import {
  BAD_GATEWAY,
  CONFLICTING_ORIGINAL_REQUEST,
  MISSING_ORIGINAL_METHOD,
  MISSING_ORIGINAL_URI,
  sendRefusal,
  UNTRUSTED_FORWARD_AUTH,
} from "./refusal.js";
import { startRequestSpan } from "./request-span.js";

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
    const [rawPath, query] = splitTarget(scanned.originalUri ?? "");
    const request: IncomingRequest = {
      via: "forward-auth",
      method: scanned.originalMethod?.toUpperCase() ?? "",
      rawPath,
      query,
      scanned,
      requestId,
      peer: req.socket.remoteAddress ?? "",
      start,
      queryAsSent: scanned.forwardedUri,
      span: undefined,
    };
    if (context.tracing !== undefined) request.span = startRequestSpan(context.tracing, request);
    const refusedEarly = !context.isTrusted(req.socket.remoteAddress ?? "")
      ? UNTRUSTED_FORWARD_AUTH
      : scanned.originalUri === undefined
        ? MISSING_ORIGINAL_URI
        : !HTTP_METHOD.test(request.method)
          ? MISSING_ORIGINAL_METHOD
          : scanned.originalConflict
            ? CONFLICTING_ORIGINAL_REQUEST
            : undefined;
    if (refusedEarly !== undefined) {
      sendRefusal(res, refusedEarly, requestId);
      countRefusedEarly(context, request, refusedEarly);
      return;
    }
    whenDecided(context, decideRequest(context, request), {
      decided(decision) {
        if (decision.allow || context.mode !== "enforce") {
          grant(res, decision, requestId);
          logRequest(context, request, decision, 200);
        } else {
          const refusal = decision.refusal ?? BAD_GATEWAY;
          sendRefusal(res, refusal, requestId);
          logRequest(context, request, decision, refusal.status);
        }
      },
      failed(error) {
        context.logger.error(
          { err: error, requestId, ...traceLogFields(request.span) },
          "deciding a forward-auth request failed",
        );
        sendRefusal(res, BAD_GATEWAY, requestId);
        logRequest(context, request, undefined, BAD_GATEWAY.status);
      },
    });
  };
}

function grant(res: ServerResponse, decision: Decision, requestId: string): void {
  const headers = ["content-length", "0", "cache-control", "no-store", "x-request-id", requestId];
  if (decision.allow && decision.key !== undefined) headers.push(...identityHeaders(decision.key));
  if (decision.rateLimitHeaders !== undefined) headers.push(...decision.rateLimitHeaders);
  res.writeHead(200, headers);
  res.end();
}
