import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { scanRequestHeaders } from "./proxy/forward-headers.js";
import { type ProxyContext, splitTarget } from "./proxy/proxy-context.js";
import { countRefusedEarly, type IncomingRequest, type Via } from "./proxy/request-decision.js";
import { HTTPS_REQUIRED, sendRefusal, sendRefusalOnSocket } from "./refusal.js";
import { nextRequestId } from "./request-id.js";

/** The plain listener's handlers when it refuses plain HTTP. */
export interface PlainHttpRefusal {
  readonly onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  readonly onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

/**
 * `LATCHKEY_SIDECAR_PLAIN_HTTP=refuse`: every request on the plain listener,
 * forward-auth and WebSocket handshakes included, is answered 403
 * `https_required` and its connection closed. Nothing is decided, verified or
 * forwarded, and the body is not read. Not a redirect: a client that followed
 * one would send its key a second time, and an API client should fail loudly
 * when it is configured with `http://`. The refusal is counted and logged
 * (`https_required`), so the clients still on plain HTTP can be found.
 *
 * @example
 * ```ts
 * const refusal = createPlainHttpRefusal(context);
 * const server = createServer(refusal.onRequest).on("upgrade", refusal.onUpgrade);
 * ```
 */
export function createPlainHttpRefusal(context: ProxyContext): PlainHttpRefusal {
  const describe = (req: IncomingMessage, via: Via): IncomingRequest => {
    const scanned = scanRequestHeaders(req.rawHeaders);
    const [rawPath, query] = splitTarget(req.url ?? "/");
    return {
      via,
      method: req.method ?? "",
      rawPath,
      query,
      scanned,
      requestId: scanned.requestId ?? nextRequestId(),
      peer: req.socket.remoteAddress ?? "",
      start: performance.now(),
    };
  };
  return {
    onRequest(req, res) {
      const request = describe(req, "proxy");
      res.shouldKeepAlive = false;
      sendRefusal(res, HTTPS_REQUIRED, request.requestId);
      countRefusedEarly(context, request, HTTPS_REQUIRED, "https_required");
    },
    onUpgrade(req, socket) {
      const request = describe(req, "websocket");
      socket.on("error", () => socket.destroy());
      sendRefusalOnSocket(socket, HTTPS_REQUIRED, request.requestId);
      countRefusedEarly(context, request, HTTPS_REQUIRED, "https_required");
    },
  };
}
