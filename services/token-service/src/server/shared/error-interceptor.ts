import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { callInfoOf } from "../connect/connect-context.js";
import { isUnavailableError } from "./unavailable-error.js";

/** What {@link toPublicError} needs to know about the failed call. */
export interface FailedCall {
  readonly logger: Logger;
  /** `package.Service/Method`. */
  readonly procedure: string;
  readonly requestId: string;
  readonly signal: AbortSignal;
}

/**
 * The error a client may see for `error`: a `ConnectError` passes unchanged
 * (the handler chose its code and message); a failure caused by the call's
 * own cancellation becomes that cancellation; a backing service that cannot be
 * reached becomes `unavailable` (retry later); anything else is logged with its
 * cause and becomes a bare `internal error`, so no stack, SQL or secret ever
 * reaches the wire.
 */
export function toPublicError(error: unknown, call: FailedCall): ConnectError {
  if (error instanceof ConnectError) {
    return error;
  }
  if (call.signal.aborted && (error === call.signal.reason || isAbortError(error))) {
    return ConnectError.from(call.signal.reason, Code.Canceled);
  }
  if (isUnavailableError(error)) {
    call.logger.warn(
      { err: error, requestId: call.requestId, procedure: call.procedure },
      "rpc failed: a backing service is unavailable",
    );
    return new ConnectError("a backing service is unavailable; retry shortly", Code.Unavailable);
  }
  call.logger.error(
    { err: error, requestId: call.requestId, procedure: call.procedure },
    "rpc failed with an unexpected error",
  );
  return new ConnectError("internal error", Code.Internal);
}

/**
 * A connect interceptor applying {@link toPublicError} to every call, for
 * unary calls and for errors raised while a response stream is produced.
 * Place it inside the logging interceptor so logs record the public code.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const call: FailedCall = {
      logger,
      procedure: `${req.service.typeName}/${req.method.name}`,
      requestId: callInfoOf(req.contextValues).requestId,
      signal: req.signal,
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        return res;
      }
      return { ...res, message: mapStreamErrors(res.message, call) };
    } catch (error) {
      throw toPublicError(error, call);
    }
  };
}

async function* mapStreamErrors<T>(messages: AsyncIterable<T>, call: FailedCall): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw toPublicError(error, call);
  }
}

function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}
