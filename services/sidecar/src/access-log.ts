import { traceLogFields } from "@latchkey/telemetry";
import { type Logger, pino } from "pino";
import type { DecisionLabel } from "./decision.js";

/** One line of the access log. Never holds a credential or a query string. */
export interface AccessLogEntry {
  readonly requestId: string;
  readonly method: string;
  /** The normalized path, without the query (which may hold a `?token=`). */
  readonly path: string;
  /** Status sent to the client; 499 when the client left before the response ended. */
  readonly status: number;
  readonly decision: DecisionLabel;
  readonly keyId: string | undefined;
  readonly teamId: string | undefined;
  readonly durationMs: number;
  /** `forward-auth`, `ext-authz` or `websocket` for those paths; absent for proxied HTTP. */
  readonly via?: "forward-auth" | "ext-authz" | "websocket";
  /** In log mode: the refusal enforce mode would have sent. */
  readonly wouldRefuse?: number;
  /** The request's trace and span ids, when tracing is on (as `trace_id`, `span_id`). */
  readonly traceId?: string | undefined;
  readonly spanId?: string | undefined;
}

/** Writes access-log lines; `flush` hands buffered lines to the logger's destination now (shutdown). */
export interface AccessLog {
  (entry: AccessLogEntry): void;
  flush(): void;
}

/** The access log buffers lines up to this many characters before it writes them (see createAccessLog). */
export const ACCESS_LOG_CHUNK = 12 * 1024;
/** …and writes what it has at least this often (ms). */
export const ACCESS_LOG_MAX_DELAY_MS = 250;

/** Base fields of the sidecar's own logger; the access log's fast path writes the same shape. */
export const LOG_BASE = { service: "latchkey-sidecar" } as const;

// Loggers made by createSidecarLogger, whose line format the fast path reproduces.
const ownDestinations = new WeakMap<Logger, { write(line: string): unknown }>();

/**
 * A pino logger for the sidecar: JSON lines, by default on stdout. Lines are
 * buffered and written 4 KiB at a time (and at least once a second): a write
 * per access-log line would cost more CPU than the proxying itself. The access
 * log writes to the destination directly, in larger chunks of its own (see
 * {@link createAccessLog}).
 */
export function createSidecarLogger(
  level: pino.LevelWithSilent,
  destination: { write(line: string): unknown } = bufferedStdout(),
): Logger {
  // Lines written while a span is active (tracing on) carry its trace and span ids.
  const logger = pino(
    { level, base: LOG_BASE, mixin: () => traceLogFields() },
    destination as pino.DestinationStream,
  );
  ownDestinations.set(logger, destination);
  return logger;
}

/** The default destination: stdout, written asynchronously in large chunks. Exported for its test. */
export function bufferedStdout(): pino.DestinationStream & { flush(): void } {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => {
    // flush() throws while the previous write is still in flight; the next tick catches up.
    try {
      destination.flush();
    } catch {}
  }, 1000).unref();
  return destination;
}

/**
 * An access log at `info`, one JSON line per request, each tagged with the key
 * that made it. For a logger from {@link createSidecarLogger} the line is
 * formatted here, in pino's shape, and written to the logger's destination:
 * on the proxy's hot path that is several times cheaper than pino's generic
 * serializer. Any other logger gets `logger.info(entry, "request")`.
 *
 * Lines are kept here until they fill {@link ACCESS_LOG_CHUNK} characters, or
 * for at most {@link ACCESS_LOG_MAX_DELAY_MS}, then handed over in one write.
 * sonic-boom measures (and so flattens) its whole pending string on every
 * write call: a call per line cost ~5 µs, a call per event-loop turn into its
 * 4 KiB buffer still flattened ~2 KiB a call, and each of its asynchronous
 * writes is a system call on a libuv worker plus thread wake-ups (per request,
 * 0.12 writes and 0.19 futex calls more than the bare proxy with 4 KiB chunks,
 * 0.05 and 0.07 with these; `npm run bench:sidecar-cost -- --tool syscalls`).
 * A chunk at least its minLength goes straight to the file descriptor.
 */
export function createAccessLog(logger: Logger): AccessLog {
  if (!logger.isLevelEnabled("info")) return Object.assign(() => {}, { flush() {} });
  const destination = ownDestinations.get(logger);
  if (destination === undefined)
    return Object.assign(
      ({ traceId, spanId, ...entry }: AccessLogEntry) =>
        logger.info(
          traceId === undefined ? entry : { ...entry, trace_id: traceId, span_id: spanId },
          "request",
        ),
      { flush() {} },
    );
  const prefix = `{"level":30,"time":`;
  const base = `,"service":${JSON.stringify(LOG_BASE.service)}`;
  let pending = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (pending === "") return;
    const chunk = pending;
    pending = "";
    destination.write(chunk);
  };
  const log = (entry: AccessLogEntry) => {
    let line = `${prefix}${Date.now()}${base},"requestId":${JSON.stringify(entry.requestId)},"method":${JSON.stringify(entry.method)},"path":${JSON.stringify(entry.path)},"status":${entry.status},"decision":"${entry.decision}"`;
    if (entry.keyId !== undefined) line += `,"keyId":${JSON.stringify(entry.keyId)}`;
    if (entry.teamId !== undefined) line += `,"teamId":${JSON.stringify(entry.teamId)}`;
    line += `,"durationMs":${entry.durationMs}`;
    if (entry.via !== undefined) line += `,"via":"${entry.via}"`;
    if (entry.wouldRefuse !== undefined) line += `,"wouldRefuse":${entry.wouldRefuse}`;
    // Hex ids from the span context: nothing to escape.
    if (entry.traceId !== undefined) line += `,"trace_id":"${entry.traceId}","span_id":"${entry.spanId}"`;
    pending += `${line},"msg":"request"}\n`;
    if (pending.length >= ACCESS_LOG_CHUNK) flush();
    else if (timer === undefined) {
      timer = setTimeout(flush, ACCESS_LOG_MAX_DELAY_MS);
      timer.unref();
    }
  };
  return Object.assign(log, { flush });
}
