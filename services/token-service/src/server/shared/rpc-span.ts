import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { remoteParent, TRACEPARENT, TRACESTATE } from "@latchkey/telemetry";
import { type Context, context, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { callInfoOf } from "../connect/connect-context.js";
import type { RpcProtocol } from "./rpc-context.js";

// The API's tracer: the SDK that startTracing registered.
const tracer = trace.getTracer("latchkey-token-service");

/** A call's server span and the context its handler runs in. */
export interface RpcSpan {
  readonly span: Span;
  readonly context: Context;
}

/**
 * Starts the server span of an RPC, continuing the caller's trace from its
 * `traceparent`/`tracestate` (gRPC metadata or HTTP headers; a malformed or
 * repeated value starts a new trace). The token-service's callers are
 * internal (sidecars, verifiers, admin tools), so their parents are believed.
 * Carries the procedure and protocol, never a header, token or key hash.
 *
 * @example
 * ```ts
 * const { span, context: ctx } = startRpcSpan("latchkey.v1.TokenService/Verify", "grpc-native", tp, ts, requestId);
 * ```
 */
export function startRpcSpan(
  procedure: string,
  protocol: RpcProtocol,
  traceparent: string | undefined,
  tracestate: string | undefined,
  requestId?: string,
): RpcSpan {
  const parent = remoteParent(traceparent, tracestate);
  const span = tracer.startSpan(procedure, SERVER_SPAN, parent);
  // Attributes only on spans that record: an unsampled call (most of them at a low rate) allocates none.
  if (span.isRecording()) {
    const slash = procedure.indexOf("/");
    span.setAttributes({
      "rpc.system": protocol === "connect" ? "connect_rpc" : "grpc",
      "rpc.service": procedure.slice(0, slash),
      "rpc.method": procedure.slice(slash + 1),
      "latchkey.protocol": protocol,
      ...(requestId === undefined ? {} : { "latchkey.request_id": requestId }),
    });
  }
  return { span, context: trace.setSpan(parent, span) };
}

/**
 * Ends an RPC's span with its status code (gRPC's numbering; 0 is OK). Codes
 * a server answers for its own failures (Internal, Unavailable, Unknown,
 * DataLoss, DeadlineExceeded) mark the span as an error; a caller's mistake
 * (InvalidArgument, Unauthenticated, …) does not.
 *
 * @example
 * ```ts
 * endRpcSpan(span, Code.InvalidArgument);
 * ```
 */
export function endRpcSpan(span: Span, code: Code | 0): void {
  if (span.isRecording()) span.setAttribute("rpc.grpc.status_code", code);
  if (SERVER_FAULTS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: Code[code] });
  span.end();
}

const SERVER_SPAN = { kind: SpanKind.SERVER } as const;

const SERVER_FAULTS = new Set<Code | 0>([
  Code.Unknown,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
  Code.DeadlineExceeded,
]);

/** A header value as one string: several fields are joined, which makes a repeated `traceparent` malformed. */
function headerValue(headers: Headers, name: string): string | undefined {
  return headers.get(name) ?? undefined;
}

/**
 * A connect interceptor giving every call on the Connect/gRPC/gRPC-Web
 * listener a server span ({@link startRpcSpan}) and running the handler in
 * its context, so the database spans and the log lines inside are the call's.
 * Installed outermost, and only when tracing is on; a streaming call's span
 * ends with its response stream.
 *
 * @example
 * ```ts
 * connectNodeAdapter({ routes, interceptors: [createTracingInterceptor(), ...] });
 * ```
 */
export function createTracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!isTraced(req.service.typeName)) return next(req);
    const { span, context: ctx } = startRpcSpan(
      `${req.service.typeName}/${req.method.name}`,
      protocolOf(req.header),
      headerValue(req.header, TRACEPARENT),
      headerValue(req.header, TRACESTATE),
      callInfoOf(req.contextValues).requestId,
    );
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await context.with(ctx, () => next(req));
    } catch (error) {
      endRpcSpan(span, error instanceof ConnectError ? error.code : Code.Internal);
      throw error;
    }
    if (!res.stream) {
      endRpcSpan(span, 0);
      return res;
    }
    return { ...res, message: endWhenDone(res.message, span) };
  };
}

async function* endWhenDone<T>(messages: AsyncIterable<T>, span: Span): AsyncIterable<T> {
  let code: Code | 0 = Code.Canceled;
  try {
    yield* messages;
    code = 0;
  } catch (error) {
    code = error instanceof ConnectError ? error.code : Code.Internal;
    throw error;
  } finally {
    endRpcSpan(span, code);
  }
}

/**
 * Whether calls of a service get spans: Latchkey's own, not `grpc.health.v1` (probes every few
 * seconds) nor server reflection, which would fill a trace store with calls nobody follows.
 *
 * @example
 * ```ts
 * isTraced("grpc.health.v1.Health"); // false
 * ```
 */
export function isTraced(serviceTypeName: string): boolean {
  return !serviceTypeName.startsWith("grpc.");
}

function protocolOf(headers: Headers): RpcProtocol {
  const type = headers.get("content-type") ?? "";
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  return "connect";
}
