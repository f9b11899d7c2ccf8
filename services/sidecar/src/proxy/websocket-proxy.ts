import {
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from "node:http";
import { type RequestOptions as HttpsRequestOptions, request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { traceLogFields } from "@latchkey/telemetry";
import type { Decision } from "../decision.js";
import {
  BAD_GATEWAY,
  BAD_WEBSOCKET_HANDSHAKE,
  type Refusal,
  sendRefusalOnSocket,
  UNSUPPORTED_UPGRADE,
} from "../refusal.js";
import { nextRequestId } from "../request-id.js";
import { startRequestSpan } from "../request-span.js";
import { filterResponseHeaders, scanRequestHeaders } from "./forward-headers.js";
import { type ProxyContext, splitTarget } from "./proxy-context.js";
import {
  countRefusedEarly,
  decideRequest,
  type IncomingRequest,
  logRequest,
  upstreamHeaders,
  upstreamTarget,
  whenDecided,
} from "./request-decision.js";
import {
  CLOSE_GOING_AWAY,
  CLOSE_POLICY_VIOLATION,
  encodeCloseFrame,
  FrameBoundaryTracker,
} from "./websocket-frames.js";

// After a close frame, how long the client gets to answer before its socket is destroyed.
const CLOSE_GRACE_MS = 5_000;
// How long a cut-off waits for the upstream to finish the frame it is in the middle of.
const FRAME_FINISH_MS = 1_000;

/**
 * The main listener's `upgrade` handler: authenticates a WebSocket handshake
 * like any request (it must be a GET without a body), sends it upstream with
 * the rewritten headers, and pipes bytes both ways only once the app answers
 * `101`; any other answer is relayed and the connection closed. Connections
 * opened by a key are registered so a revocation can close them with code 1008.
 */
export function createUpgradeHandler(
  context: ProxyContext,
): (req: IncomingMessage, socket: Socket, head: Buffer) => void {
  return (req, socket, head) => {
    const scanned = scanRequestHeaders(req.rawHeaders);
    const [rawPath, query] = splitTarget(req.url ?? "/");
    const request: IncomingRequest = {
      via: "websocket",
      method: req.method ?? "GET",
      rawPath,
      query,
      scanned,
      requestId: scanned.requestId ?? nextRequestId(),
      peer: socket.remoteAddress ?? "",
      start: performance.now(),
      span: undefined,
    };
    if (context.tracing !== undefined) request.span = startRequestSpan(context.tracing, request);
    socket.on("error", () => socket.destroy());
    // Node 26 hands an upgrade that has a body over as a plain Duplex (no setNoDelay); it is refused anyway.
    if ("setNoDelay" in socket) (socket as Socket).setNoDelay(true);
    const malformed =
      scanned.upgrade?.toLowerCase() !== "websocket"
        ? UNSUPPORTED_UPGRADE
        : request.method !== "GET" || scanned.hasBody
          ? BAD_WEBSOCKET_HANDSHAKE
          : undefined;
    if (malformed !== undefined) {
      sendRefusalOnSocket(socket, malformed, request.requestId);
      countRefusedEarly(context, request, malformed);
      return;
    }
    whenDecided(context, decideRequest(context, request), {
      decided(decision) {
        if (!decision.allow && context.mode === "enforce") {
          const refusal = decision.refusal as Refusal;
          sendRefusalOnSocket(socket, refusal, request.requestId);
          logRequest(context, request, decision, refusal.status);
          return;
        }
        if (socket.destroyed) return;
        const headers = upstreamHeaders(context, request, decision, socket);
        tunnel(context, decision, socket, upstreamTarget(context, decision), headers, head, request);
      },
      failed(error) {
        context.logger.error(
          { err: error, requestId: request.requestId, ...traceLogFields(request.span) },
          "deciding an upgrade failed",
        );
        sendRefusalOnSocket(socket, BAD_GATEWAY, request.requestId);
        logRequest(context, request, undefined, BAD_GATEWAY.status);
      },
    });
  };
}

function tunnel(
  context: ProxyContext,
  decision: Decision,
  client: Socket,
  path: string,
  headers: string[],
  head: Buffer,
  incoming: IncomingRequest,
): void {
  const { method, requestId } = incoming;
  const url = context.upstreamUrl;
  const secure = url.protocol === "https:";
  const host = url.hostname.replace(/^\[|\]$/g, "");
  let upstream: Duplex | undefined;
  let status = 0;
  let logged = false;
  const finishLog = () => {
    if (logged) return;
    logged = true;
    logRequest(context, incoming, decision, status === 0 ? 502 : status);
  };

  // node:http parses the upstream's answer, so what follows the handshake is decided by its real
  // status: only a 101 turns the connection into a tunnel. Anything else is an ordinary response,
  // relayed once, after which both sides close: a client never gets a raw pipe to an app that
  // answered the handshake as a plain request (and would read further requests from it unchecked).
  let request: ClientRequest;
  try {
    const options: RequestOptions & HttpsRequestOptions = {
      host,
      port: Number(url.port || (secure ? 443 : 80)),
      method,
      path,
      headers: [...headers, "connection", "Upgrade", "upgrade", "websocket"],
      setHost: false,
      agent: false,
    };
    // Without ALPN a TLS server speaks HTTP/1.1, the only version a WebSocket handshake has.
    request = secure ? httpsRequest({ ...options, servername: host }) : httpRequest(options);
  } catch (error) {
    context.logger.warn(
      { err: error, requestId, ...traceLogFields(incoming.span) },
      "upstream WebSocket request could not be built",
    );
    sendRefusalOnSocket(client, BAD_GATEWAY, requestId);
    finishLog();
    return;
  }
  request.setTimeout(context.upstreamHeadersTimeoutMs, () =>
    request.destroy(new Error("upstream did not answer the WebSocket handshake in time")),
  );
  request.on("socket", (socket) => socket.setNoDelay(true));
  request.on("error", (error) => {
    if (status === 0 && !client.destroyed && client.writable) {
      context.metrics.upstreamError();
      context.logger.warn(
        { err: error, requestId, ...traceLogFields(incoming.span) },
        "upstream WebSocket connection failed",
      );
      sendRefusalOnSocket(client, BAD_GATEWAY, requestId);
    } else client.destroy();
    finishLog();
  });
  request.on("response", (response) => {
    status = response.statusCode ?? 502;
    relayRefusedHandshake(client, response, rateLimitLines(decision));
    response.once("close", () => request.destroy());
    finishLog();
  });
  request.on("upgrade", (response, socket, upgradeHead) => {
    status = 101;
    upstream = socket;
    socket.setTimeout(0);
    let responseHead = `HTTP/1.1 101 ${response.statusMessage ?? "Switching Protocols"}\r\n`;
    const raw = response.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) responseHead += `${raw[i]}: ${raw[i + 1]}\r\n`;
    responseHead += rateLimitLines(decision);
    client.write(`${responseHead}\r\n`);
    splice(context, decision, client, socket, head, upgradeHead, finishLog);
  });
  request.end();
  client.on("close", () => {
    request.destroy();
    upstream?.destroy();
    finishLog();
  });
}

/** The decision's `RateLimit-Policy`/`RateLimit` header lines, as every proxied answer carries them. */
function rateLimitLines(decision: Decision): string {
  const headers = decision.rateLimitHeaders;
  if (headers === undefined) return "";
  let lines = "";
  for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return lines;
}

/**
 * Sends the client the app's non-101 answer to the handshake, framed by its
 * length or by the close that follows, then closes. The client's socket is
 * drained and never read: bytes it sent after the handshake go nowhere.
 */
function relayRefusedHandshake(client: Socket, response: IncomingMessage, extraLines: string): void {
  if (client.destroyed) {
    response.destroy();
    return;
  }
  const { headers } = filterResponseHeaders(response.rawHeaders.map((value) => Buffer.from(value, "latin1")));
  let responseHead = `HTTP/1.1 ${response.statusCode} ${response.statusMessage ?? ""}\r\nconnection: close\r\n`;
  for (let i = 0; i < headers.length; i += 2) responseHead += `${headers[i]}: ${headers[i + 1]}\r\n`;
  client.write(`${responseHead}${extraLines}\r\n`);
  client.resume();
  response.pipe(client);
  response.once("end", () => {
    // A lingering close: the client reads the answer before its connection goes.
    setTimeout(() => client.destroy(), CLOSE_GRACE_MS).unref();
  });
  response.once("error", () => client.destroy());
}

/** After a 101: bytes flow both ways, and the connection is registered so a revocation can close it. */
function splice(
  context: ProxyContext,
  decision: Decision,
  client: Socket,
  upstream: Duplex,
  clientHead: Buffer,
  upstreamHead: Buffer,
  finishLog: () => void,
): void {
  const tracker = new FrameBoundaryTracker();
  let cutting: { code: number; reason: string } | undefined;
  let removeLive: (() => void) | undefined;

  const endWithClose = () => {
    if (cutting === undefined) return;
    client.end(encodeCloseFrame(cutting.code, cutting.reason));
    setTimeout(() => client.destroy(), CLOSE_GRACE_MS).unref();
    upstream.destroy();
  };

  const cut = (code: number, reason: string) => {
    if (cutting !== undefined) return;
    cutting = { code, reason };
    // Nothing more reaches the upstream; the client hears the close frame once the current frame ends.
    client.unpipe(upstream);
    if (tracker.atBoundary) endWithClose();
    else
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
      }, FRAME_FINISH_MS).unref();
  };

  const forwardFrames = (chunk: Buffer) => {
    if (cutting !== undefined) {
      const consumed = tracker.advance(chunk, true);
      if (consumed > 0) client.write(chunk.subarray(0, consumed));
      if (tracker.atBoundary) endWithClose();
      return;
    }
    tracker.advance(chunk);
    if (!client.write(chunk)) {
      upstream.pause();
      client.once("drain", () => upstream.resume());
    }
  };

  if (decision.allow && decision.key !== undefined && decision.credential !== undefined) {
    removeLive = context.liveConnections.add({
      kind: "websocket",
      keyId: decision.key.id,
      credential: decision.credential,
      requiredScopes: decision.rule?.access.kind === "key" ? decision.rule.access.scopes : [],
      close: (why) =>
        why === "going away"
          ? cut(CLOSE_GOING_AWAY, "server shutting down")
          : cut(CLOSE_POLICY_VIOLATION, why),
    });
  }
  upstream.on("error", () => client.destroy());
  upstream.on("data", forwardFrames);
  upstream.on("end", () => {
    if (cutting === undefined) client.end();
  });
  upstream.on("close", () => {
    removeLive?.();
    if (cutting === undefined) client.end();
    finishLog();
  });
  client.on("close", () => removeLive?.());
  if (upstreamHead.length > 0) forwardFrames(upstreamHead);
  if (clientHead.length > 0) upstream.write(clientHead);
  client.pipe(upstream);
}
