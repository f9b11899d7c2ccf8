import { Code, ConnectError } from "@connectrpc/connect";
import { Metadata, type ServerErrorResponse, type status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { toPublicError } from "../shared/error-interceptor.js";
import { type CallRecord, logCall } from "../shared/logging-interceptor.js";
import { REQUEST_ID_HEADER, resolveRequestId } from "../shared/request-id.js";
import type { RpcContext } from "../shared/rpc-context.js";

/** The part of a grpc-js call of any kind used here (grpc-js does not export its own type). */
export interface ServerSurfaceCall {
  readonly metadata: Metadata;
  getPeer(): string;
  sendMetadata(metadata: Metadata): void;
  once(event: "cancelled", listener: () => void): unknown;
  off(event: "cancelled", listener: () => void): unknown;
}

/** One grpc-js call in progress: its {@link RpcContext} and how to finish it. */
export interface GrpcCall {
  readonly context: RpcContext;
  /** Logs the call as done (cancelled if its signal aborted first) and aborts its signal. */
  succeeded(): void;
  /** Logs the cause if it is unexpected, logs the call, and returns the status to send. */
  failed(error: unknown): ServerErrorResponse;
}

/** What every call on the grpc-js listener shares. */
export interface GrpcCallScope {
  readonly logger: Logger;
  /** Aborted when the server gives up waiting for in-flight calls. */
  readonly shutdownSignal: AbortSignal;
  /** Told about every finished call (metrics). */
  readonly onCallFinished?: ((record: CallRecord) => void) | undefined;
}

/**
 * Starts bookkeeping for a grpc-js call: picks its request id and sends it
 * back as response metadata; headers, peer and signal are built on first use.
 */
export function startGrpcCall(call: ServerSurfaceCall, procedure: string, scope: GrpcCallScope): GrpcCall {
  return new GrpcCallState(call, procedure, scope);
}

// One object per call, with its methods on the prototype: the unary path
// (Verify) allocates no closures. Headers, peer and the signal are built on
// first use: Verify reads none of them, and on Node 20 AbortSignal.any alone
// costs ~40 µs, more than a whole cached Verify. The object is also the call's
// CallRecord (metrics and the log read it synchronously and keep nothing), so
// finishing a call makes no record object.
class GrpcCallState implements GrpcCall, RpcContext, CallRecord {
  readonly requestId: string;
  readonly protocol = "grpc-native" as const;
  readonly procedure: string;
  readonly startedAt = performance.now();
  code: Code | 0 = 0;
  readonly #call: ServerSurfaceCall;
  readonly #scope: GrpcCallScope;
  #headers: Headers | undefined;
  #done: AbortController | undefined;
  #unlisten: (() => void) | undefined;

  constructor(call: ServerSurfaceCall, procedure: string, scope: GrpcCallScope) {
    this.#call = call;
    this.procedure = procedure;
    this.#scope = scope;
    const fromClient = call.metadata.get(REQUEST_ID_HEADER)[0];
    this.requestId = resolveRequestId(typeof fromClient === "string" ? fromClient : undefined);
    // In the response headers, sent now. (Tried: in the trailers instead, to
    // save the separate HEADERS write; bench:verify measured it slower.)
    call.sendMetadata(new RequestIdHeader(this.requestId));
  }

  get context(): RpcContext {
    return this;
  }

  get requestHeader(): Headers {
    this.#headers ??= metadataToHeaders(this.#call.metadata);
    return this.#headers;
  }

  get peer(): string {
    return this.#call.getPeer();
  }

  get signal(): AbortSignal {
    if (this.#done) return this.#done.signal;
    const done = new AbortController();
    this.#done = done;
    const shutdown = this.#scope.shutdownSignal;
    if (shutdown.aborted) done.abort(shutdown.reason);
    const onShutdown = () => done.abort(shutdown.reason);
    const onCancelled = () => done.abort(new ConnectError("call cancelled by the client", Code.Canceled));
    shutdown.addEventListener("abort", onShutdown, { once: true });
    this.#call.once("cancelled", onCancelled);
    this.#unlisten = () => {
      this.#call.off("cancelled", onCancelled);
      shutdown.removeEventListener("abort", onShutdown);
    };
    return done.signal;
  }

  succeeded(): void {
    this.#finish(this.#done?.signal.aborted ? Code.Canceled : 0);
  }

  failed(error: unknown): ServerErrorResponse {
    const publicError = toPublicError(error, {
      logger: this.#scope.logger,
      procedure: this.procedure,
      requestId: this.requestId,
      signal: this.signal,
    });
    this.#finish(publicError.code);
    // Connect's codes are gRPC's status codes, value for value.
    const code: status = publicError.code as number;
    return Object.assign(new Error(publicError.rawMessage), {
      code,
      details: publicError.rawMessage,
      metadata: withRequestId(headersToMetadata(publicError.metadata), this.requestId),
    });
  }

  #finish(code: Code | 0): void {
    const done = this.#done;
    if (done) {
      this.#unlisten?.();
      // Like connect's HandlerContext.signal: a finished call's signal is aborted.
      done.abort(new ConnectError("call finished", Code.Canceled));
    }
    this.code = code;
    this.#scope.onCallFinished?.(this);
    logCall(this.#scope.logger, this);
  }
}

/**
 * The response headers of a call: its request id alone. grpc-js's server reads
 * response metadata only through `toHttp2Headers()` (the grpc-js listener
 * registers no server interceptors that could read it otherwise), so this skips
 * what `Metadata.set` and its `toHttp2Headers` cost on every call: key and
 * value validated by regular expressions (a request id is already one of ours
 * or passed `SANE_REQUEST_ID`), a one-element array per value, and a map
 * iteration. `grpc-server.test.ts` reads the header back through a grpc-js client.
 */
class RequestIdHeader extends Metadata {
  readonly #requestId: string;

  constructor(requestId: string) {
    super();
    this.#requestId = requestId;
  }

  override toHttp2Headers(): { [REQUEST_ID_HEADER]: string } {
    return { [REQUEST_ID_HEADER]: this.#requestId };
  }
}

/** gRPC metadata as fetch `Headers`; binary (`-bin`) entries are left out. */
export function metadataToHeaders(metadata: Metadata): Headers {
  const headers = new Headers();
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    if (key.endsWith("-bin")) {
      continue;
    }
    for (const value of values) {
      headers.append(key, String(value));
    }
  }
  return headers;
}

function headersToMetadata(headers: Headers): Metadata {
  const metadata = new Metadata();
  headers.forEach((value, key) => {
    if (!key.endsWith("-bin")) {
      metadata.add(key, value);
    }
  });
  return metadata;
}

function withRequestId(metadata: Metadata, requestId: string): Metadata {
  metadata.set(REQUEST_ID_HEADER, requestId);
  return metadata;
}
