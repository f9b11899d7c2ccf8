import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { callInfoOf } from "../connect/connect-context.js";

/** One finished call, as logged. Deliberately has no headers: they carry `Authorization`. */
export interface CallRecord {
  /** `package.Service/Method`. */
  readonly procedure: string;
  readonly requestId: string;
  /** Connect's codes equal gRPC's status codes; `Code.Ok` is logged as `ok`. */
  readonly code: Code | 0;
  readonly startedAt: number;
  readonly protocol?: string;
}

/** Logs a finished call at debug level: procedure, code name, duration in ms, request id. */
export function logCall(logger: Logger, record: CallRecord): void {
  if (!logger.isLevelEnabled("debug")) {
    return;
  }
  logger.debug(
    {
      procedure: record.procedure,
      code: record.code === 0 ? "ok" : Code[record.code],
      durationMs: Math.round((performance.now() - record.startedAt) * 10) / 10,
      requestId: record.requestId,
      ...(record.protocol === undefined ? {} : { protocol: record.protocol }),
    },
    "rpc",
  );
}

/**
 * A connect interceptor logging each call with {@link logCall} once it ends
 * (and telling `onCallFinished`, for metrics):
 * a unary call when it returns, a streaming call when its response stream ends.
 * Place it outside the error interceptor so it logs the code the client sees.
 */
export function createLoggingInterceptor(
  logger: Logger,
  onCallFinished?: (record: CallRecord) => void,
): Interceptor {
  return (next) => async (req) => {
    const startedAt = performance.now();
    const finish = (code: Code | 0) => {
      const record: CallRecord = {
        procedure: `${req.service.typeName}/${req.method.name}`,
        requestId: callInfoOf(req.contextValues).requestId,
        code,
        startedAt,
      };
      onCallFinished?.(record);
      logCall(logger, record);
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (error) {
      finish(codeOf(error));
      throw error;
    }
    // A handler that returns normally after its signal aborted was cut short
    // (client gone, deadline, shutdown): log why, not "ok".
    const ended = () => (req.signal.aborted ? ConnectError.from(req.signal.reason, Code.Canceled).code : 0);
    if (!res.stream) {
      finish(ended());
      return res;
    }
    return { ...res, message: logWhenDone(res.message, ended, finish) };
  };
}

async function* logWhenDone<T>(
  messages: AsyncIterable<T>,
  ended: () => Code | 0,
  finish: (code: Code | 0) => void,
): AsyncIterable<T> {
  let code: Code | 0 = Code.Canceled; // stays so when the consumer stops early
  try {
    yield* messages;
    code = ended();
  } catch (error) {
    code = codeOf(error);
    throw error;
  } finally {
    finish(code);
  }
}

function codeOf(error: unknown): Code {
  return error instanceof ConnectError ? error.code : Code.Internal;
}
