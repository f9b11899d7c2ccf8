import type { IncomingMessage } from "node:http";
import { connect as connectTcp, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import type { Decision } from "../authorize.js";
import { BAD_GATEWAY, type Refusal, sendRefusalOnSocket, UNSUPPORTED_UPGRADE } from "../refusal.js";
import { nextRequestId } from "../request-id.js";
import { buildUpstreamHeaders, scanRequestHeaders } from "./forward-headers.js";
import { identityHeaders } from "./identity-headers.js";
import { decide, type ProxyContext, splitTarget, whenDecided } from "./proxy-context.js";
import {
  CLOSE_GOING_AWAY,
  CLOSE_POLICY_VIOLATION,
  encodeCloseFrame,
  FrameBoundaryTracker,
} from "./websocket-frames.js";

const MAX_RESPONSE_HEAD = 16 * 1024;
// After a close frame, how long the client gets to answer before its socket is destroyed.
const CLOSE_GRACE_MS = 5_000;
// How long a cut-off waits for the upstream to finish the frame it is in the middle of.
const FRAME_FINISH_MS = 1_000;

/**
 * The main listener's `upgrade` handler: authenticates a WebSocket handshake
 * like any request, then opens a raw TCP (or TLS) connection to the upstream,
 * replays the handshake with the rewritten headers and pipes bytes both ways.
 * Connections opened by a key are registered so a revocation can close them
 * with code 1008.
 */
export function createUpgradeHandler(
  context: ProxyContext,
): (req: IncomingMessage, socket: Socket, head: Buffer) => void {
  return (req, socket, head) => {
    const start = performance.now();
    const scanned = scanRequestHeaders(req.rawHeaders);
    const requestId = scanned.requestId ?? nextRequestId();
    const [rawPath, query] = splitTarget(req.url ?? "/");
    const method = req.method ?? "GET";
    socket.on("error", () => socket.destroy());
    socket.setNoDelay(true);
    const log = (decision: Decision, status: number) =>
      context.accessLog({
        requestId,
        method,
        path: decision.path,
        status,
        decision: decision.label,
        keyId: decision.key?.id,
        teamId: decision.key?.teamId,
        durationMs: Math.round((performance.now() - start) * 1000) / 1000,
        via: "websocket",
      });
    if (scanned.upgrade?.toLowerCase() !== "websocket") {
      // Refused, counted and logged like every other refusal.
      context.metrics.decision("bad_request");
      sendRefusalOnSocket(socket, UNSUPPORTED_UPGRADE, requestId);
      context.accessLog({
        requestId,
        method,
        path: rawPath,
        status: UNSUPPORTED_UPGRADE.status,
        decision: "bad_request",
        keyId: undefined,
        teamId: undefined,
        durationMs: Math.round((performance.now() - start) * 1000) / 1000,
        via: "websocket",
      });
      return;
    }
    const decision = decide(context, method, rawPath, query, scanned);
    whenDecided(
      decision,
      (decided) => {
        context.metrics.decision(decided.label);
        if (!decided.allow && context.mode === "enforce") {
          const refusal = decided.refusal as Refusal;
          sendRefusalOnSocket(socket, refusal, requestId);
          log(decided, refusal.status);
          return;
        }
        if (socket.destroyed) return;
        const identity =
          decided.allow && decided.key !== undefined ? identityHeaders(decided.key) : undefined;
        const headers = buildUpstreamHeaders(scanned, {
          peer: socket.remoteAddress ?? "",
          isTrusted: context.isTrusted,
          requestId,
          identity,
          passCredential: decided.passCredential,
        });
        const path = `${context.basePath}${decided.path}${decided.query === "" ? "" : `?${decided.query}`}`;
        let requestHead = `${method} ${path} HTTP/1.1\r\n`;
        for (let i = 0; i < headers.length; i += 2) requestHead += `${headers[i]}: ${headers[i + 1]}\r\n`;
        requestHead += "connection: Upgrade\r\nupgrade: websocket\r\n\r\n";
        tunnel(context, decided, socket, requestHead, head, requestId, (status) => log(decided, status));
      },
      (error) => {
        context.logger.error({ err: error, requestId }, "deciding an upgrade failed");
        sendRefusalOnSocket(socket, BAD_GATEWAY, requestId);
      },
    );
  };
}

function tunnel(
  context: ProxyContext,
  decision: Decision,
  client: Socket,
  requestHead: string,
  head: Buffer,
  requestId: string,
  log: (status: number) => void,
): void {
  const url = context.upstreamUrl;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const secure = url.protocol === "https:";
  const port = Number(url.port || (secure ? 443 : 80));
  const upstream: Socket = secure
    ? connectTls({ host, port, servername: host, ALPNProtocols: ["http/1.1"] })
    : connectTcp({ host, port });
  const tracker = new FrameBoundaryTracker();
  let responseHead: Buffer | undefined = Buffer.alloc(0);
  let status = 0;
  let cutting: { code: number; reason: string } | undefined;
  let removeLive: (() => void) | undefined;
  let logged = false;
  const finishLog = () => {
    if (logged) return;
    logged = true;
    removeLive?.();
    log(status === 0 ? 502 : status);
  };

  const endWithClose = () => {
    if (cutting === undefined) return;
    if (status === 101) {
      client.end(encodeCloseFrame(cutting.code, cutting.reason));
      setTimeout(() => client.destroy(), CLOSE_GRACE_MS).unref();
    } else {
      client.destroy();
    }
    upstream.destroy();
  };

  const cut = (code: number, reason: string) => {
    if (cutting !== undefined) return;
    cutting = { code, reason };
    // Nothing more reaches the upstream; the client hears the close frame once the current frame ends.
    client.unpipe(upstream);
    if (status !== 101 || tracker.atBoundary) endWithClose();
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

  upstream.setNoDelay(true);
  upstream.on(secure ? "secureConnect" : "connect", () => {
    upstream.write(requestHead);
    if (head.length > 0) upstream.write(head);
    client.pipe(upstream);
  });
  upstream.on("data", (chunk: Buffer) => {
    if (responseHead === undefined) {
      forwardFrames(chunk);
      return;
    }
    // Until the upstream's response head is complete, collect it: its status decides what follows.
    const collected: Buffer = Buffer.concat([responseHead, chunk]);
    const end = collected.indexOf("\r\n\r\n");
    if (end === -1) {
      if (collected.length > MAX_RESPONSE_HEAD) {
        client.destroy();
        upstream.destroy();
      } else responseHead = collected;
      return;
    }
    responseHead = undefined;
    status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(collected.subarray(0, 16).toString("latin1"))?.[1] ?? 502);
    client.write(collected.subarray(0, end + 4));
    if (status === 101 && decision.allow && decision.key !== undefined && decision.credential !== undefined) {
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
    const rest = collected.subarray(end + 4);
    if (rest.length > 0) forwardFrames(rest);
  });
  upstream.on("error", (error) => {
    if (status === 0 && !client.destroyed && client.writable) {
      context.metrics.upstreamError();
      context.logger.warn({ err: error, requestId }, "upstream WebSocket connection failed");
      sendRefusalOnSocket(client, BAD_GATEWAY, requestId);
    } else {
      client.destroy();
    }
    finishLog();
  });
  upstream.on("end", () => {
    if (cutting === undefined) client.end();
  });
  upstream.on("close", () => {
    if (cutting === undefined) client.end();
    finishLog();
  });
  client.on("close", () => {
    upstream.destroy();
    finishLog();
  });
}
