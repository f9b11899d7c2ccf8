import { type IncomingMessage, METHODS, type ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { traceLogFields } from "@latchkey/telemetry";
import type { Span } from "@opentelemetry/api";
import type { Dispatcher } from "undici";
import type { Decision } from "../decision.js";
import { BAD_GATEWAY, CONFLICTING_HOST, type Refusal, sendRefusal, UNSUPPORTED_METHOD } from "../refusal.js";
import { nextRequestId } from "../request-id.js";
import { startRequestSpan } from "../request-span.js";
import { filterResponseHeaders, type ScannedRequest, scanRequestHeaders } from "./forward-headers.js";
import { type ProxyContext, splitTarget } from "./proxy-context.js";
import {
  countRefusedEarly,
  type DecisionReceiver,
  decideRequest,
  type IncomingRequest,
  logRequest,
  upstreamHeaders,
  upstreamTarget,
  whenDecided,
} from "./request-decision.js";

/** Handles requests that are not for the proxy itself (the forward-auth endpoint). */
export type LocalRoute = (
  req: IncomingMessage,
  res: ServerResponse,
  scanned: ScannedRequest,
  requestId: string,
  start: number,
) => void;

/**
 * The listeners' request handler: decide, then either refuse or stream the
 * request to the upstream and the response back, with nothing buffered.
 * `localRoutes` are exact paths the sidecar answers itself. It serves HTTP/1.x
 * and, on the HTTPS listener, HTTP/2 through Node's compatibility API (whose
 * request and response stand in for `IncomingMessage` and `ServerResponse`):
 * an HTTP/2 request goes upstream as HTTP/1.1 (see `scanRequestHeaders`).
 */
export function createRequestHandler(
  context: ProxyContext,
  localRoutes: ReadonlyMap<string, LocalRoute>,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const start = performance.now();
    const http2 = req.httpVersionMajor === 2;
    const scanned = scanRequestHeaders(
      req.rawHeaders,
      http2 ? { endedWithHeaders: (req as unknown as Http2ServerRequest).stream.endAfterHeaders } : undefined,
    );
    const requestId = scanned.requestId ?? nextRequestId();
    const [rawPath, query] = splitTarget(req.url ?? "/");
    const local = localRoutes.get(rawPath);
    if (local !== undefined) {
      local(req, res, scanned, requestId, start);
      return;
    }
    const exchange = new HttpExchange(context, req, res, scanned, requestId, start, rawPath, query);
    if (context.tracing !== undefined) exchange.span = startRequestSpan(context.tracing, exchange);
    const malformed = http2 ? http2Refusal(req.method ?? "", scanned) : undefined;
    if (malformed !== undefined) {
      sendRefusal(res, malformed, requestId);
      countRefusedEarly(context, exchange, malformed);
      return;
    }
    whenDecided(context, decideRequest(context, exchange), exchange);
  };
}

// The methods Node's HTTP/1.1 parser accepts. HTTP/2 takes any token as a method, `delete` and
// `Delete` included, which no rule written for DELETE matches but an app that upper-cases methods
// would run as DELETE: over HTTP/2 the sidecar accepts exactly what it accepts over HTTP/1.1.
const HTTP1_METHODS = new Set(METHODS);

/** What an HTTP/2 request carries that HTTP/1.1 could not, refused before any decision; undefined when none. */
function http2Refusal(method: string, scanned: ScannedRequest): Refusal | undefined {
  if (!HTTP1_METHODS.has(method)) return UNSUPPORTED_METHOD;
  return scanned.hostConflict ? CONFLICTING_HOST : undefined;
}

const kExchange = Symbol("latchkey.exchange");

// One listener function for every response: no closure per request on the hot path.
function onResponseClose(this: ServerResponse & { [kExchange]?: HttpExchange }): void {
  this[kExchange]?.clientClosed();
}

function releaseHeld(exchange: HttpExchange): void {
  exchange.releaseHeld();
}

/**
 * One request through the proxy: its decision, then its trip to the upstream
 * as an undici dispatch handler. It uses undici's raw-header callbacks
 * (onHeaders/onData/onComplete) because they are undici's native path: the
 * newer controller API parses every response header into an object first,
 * which this proxy would only turn back into a list. Backpressure: a full
 * client socket pauses the upstream parser until `drain`.
 */
class HttpExchange implements Dispatcher.DispatchHandler, IncomingRequest, DecisionReceiver {
  readonly via = "proxy";
  readonly method: string;
  span: Span | undefined = undefined;
  #decision: Decision | undefined;
  #controller: AbortController | undefined;
  #abort: ((error?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  /** A first body chunk held back for one microtask, so a small response goes out in one write. */
  #held: Buffer | undefined;
  #streaming = false;
  /** The response's Content-Length, or -1. */
  #contentLength = -1;
  #status = 0;
  #done = false;
  #removeLive: (() => void) | undefined;
  #listening = false;

  constructor(
    readonly context: ProxyContext,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly scanned: ScannedRequest,
    readonly requestId: string,
    readonly start: number,
    readonly rawPath: string,
    readonly query: string,
  ) {
    this.method = req.method ?? "GET";
  }

  /** The TCP peer, for per-client rate limits. */
  get peer(): string {
    return this.req.socket.remoteAddress ?? "";
  }

  /** The lookup's abort signal comes from here (see {@link HttpExchange.signal}). */
  get abortable(): { readonly signal: AbortSignal } {
    return this;
  }

  /** Aborts a verifier lookup when the client leaves; created only when a lookup has to wait. */
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    this.#listenForClose();
    return this.#controller.signal;
  }

  #listenForClose(): void {
    if (this.#listening) return;
    this.#listening = true;
    (this.res as ServerResponse & { [kExchange]?: HttpExchange })[kExchange] = this;
    this.res.on("close", onResponseClose);
  }

  /** Whether the client is gone: `destroyed` on HTTP/1, the stream's on HTTP/2 (its response has none). */
  get #gone(): boolean {
    return this.res.destroyed || (this.res as { stream?: { destroyed: boolean } }).stream?.destroyed === true;
  }

  decided(decision: Decision): void {
    const { context } = this;
    if (decision.allow || context.mode === "log") {
      if (!this.#gone) this.forward(decision);
      return;
    }
    const refusal = decision.refusal ?? BAD_GATEWAY;
    // A refused upload is not read to its end: the connection closes after the answer.
    if (this.scanned.hasBody && !this.req.complete) this.res.shouldKeepAlive = false;
    if (!this.#gone) sendRefusal(this.res, refusal, this.requestId);
    this.#decision = decision;
    this.#finish(refusal.status);
  }

  failed(error: unknown): void {
    this.context.logger.error(
      { err: error, requestId: this.requestId, ...traceLogFields(this.span) },
      "deciding a request failed",
    );
    if (!this.res.headersSent && !this.#gone) sendRefusal(this.res, BAD_GATEWAY, this.requestId);
    else this.res.destroy();
    this.#finish(BAD_GATEWAY.status);
  }

  forward(decision: Decision): void {
    const { context, scanned, req } = this;
    this.#decision = decision;
    const headers = upstreamHeaders(context, this, decision, req.socket);
    const path = upstreamTarget(context, decision);
    this.#listenForClose();
    context.upstream.dispatch(
      {
        path,
        method: this.method as Dispatcher.HttpMethod,
        headers,
        body: scanned.hasBody ? req : null,
        // The timeouts are the pool's (sidecar.ts): no body timeout, since streams (SSE, long polls)
        // may be silent as long as they like; a deadline for the headers.
      },
      this,
    );
  }

  onConnect(abort: (error?: Error) => void): void {
    if (this.#done) abort();
    else this.#abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true;
    const { headers, eventStream, contentLength } = filterResponseHeaders(rawHeaders);
    const rateLimitHeaders = this.#decision?.rateLimitHeaders;
    if (rateLimitHeaders !== undefined) for (const value of rateLimitHeaders) headers.push(value);
    this.#status = statusCode;
    this.#contentLength = contentLength;
    this.#resume = resume;
    // HTTP/2 has no reason phrase (Node warns when given one).
    if (statusText === "" || this.req.httpVersionMajor === 2) this.res.writeHead(statusCode, headers);
    else this.res.writeHead(statusCode, statusText, headers);
    if (eventStream) {
      // An EventSource waits for the headers before it reports the stream open.
      this.#streaming = true;
      this.res.flushHeaders();
      this.#trackLive();
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (!this.#streaming) {
      // Most responses arrive whole in one read: hold the first chunk until the end of this turn,
      // and if the response completes meanwhile, headers and body leave in a single write. A chunk
      // that is the whole Content-Length needs no timer: the parser completes the response in the
      // same call that delivered it (onComplete comes next), so nothing is scheduled per request.
      if (this.#held === undefined) {
        this.#held = chunk;
        if (chunk.length !== this.#contentLength) process.nextTick(releaseHeld, this);
        return true;
      }
      this.releaseHeld();
    }
    return this.#write(chunk);
  }

  /** Writes a held first chunk: the response did not complete within the turn it arrived in. */
  releaseHeld(): void {
    this.#streaming = true;
    const held = this.#held;
    if (held === undefined || this.#done) return;
    this.#held = undefined;
    this.#write(held);
  }

  #write(chunk: Buffer): boolean {
    const flushed = this.res.write(chunk);
    if (!flushed && this.#resume !== undefined) this.res.once("drain", this.#resume);
    return flushed;
  }

  onComplete(): void {
    const held = this.#held;
    this.#held = undefined;
    this.#streaming = true;
    if (held === undefined) this.res.end();
    else this.res.end(held);
    this.#finish(this.#status);
  }

  onError(error: Error): void {
    if (this.#done) return;
    if (!this.res.headersSent && !this.#gone) {
      this.context.metrics.upstreamError();
      this.context.logger.warn(
        { err: error, requestId: this.requestId, ...traceLogFields(this.span) },
        "upstream request failed",
      );
      sendRefusal(this.res, BAD_GATEWAY, this.requestId);
      this.#finish(BAD_GATEWAY.status);
      return;
    }
    this.res.destroy();
    this.#finish(this.#status === 0 ? 499 : this.#status);
  }

  /** The client went away (or the response ended): stop the upstream side if it is still going. */
  clientClosed(): void {
    this.#controller?.abort();
    if (this.#done) return;
    this.#finish(499);
    this.#abort?.();
  }

  #trackLive(): void {
    const decision = this.#decision;
    if (
      decision === undefined ||
      !decision.allow ||
      decision.key === undefined ||
      decision.credential === undefined
    )
      return;
    this.#removeLive = this.context.liveConnections.add({
      kind: "sse",
      keyId: decision.key.id,
      credential: decision.credential,
      requiredScopes: decision.rule?.access.kind === "key" ? decision.rule.access.scopes : [],
      close: () => {
        // End the client's stream cleanly first; the upstream side is then simply dropped.
        this.res.end();
        this.#finish(this.#status);
        this.#abort?.();
      },
    });
  }

  #finish(status: number): void {
    if (this.#done) return;
    this.#done = true;
    this.#removeLive?.();
    logRequest(this.context, this, this.#decision, status);
  }
}
