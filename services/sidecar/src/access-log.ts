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
  /** `forward-auth` or `websocket` for those paths; absent for proxied HTTP. */
  readonly via?: "forward-auth" | "websocket";
  /** In log mode: the refusal enforce mode would have sent. */
  readonly wouldRefuse?: number;
}

/** Writes access-log lines. */
export type AccessLog = (entry: AccessLogEntry) => void;

/** Base fields of the sidecar's own logger; the access log's fast path writes the same shape. */
export const LOG_BASE = { service: "latchkey-sidecar" } as const;

// Loggers made by createSidecarLogger, whose line format the fast path reproduces.
const ownDestinations = new WeakMap<Logger, { write(line: string): unknown }>();

/**
 * A pino logger for the sidecar: JSON lines, by default on stdout. Lines are
 * buffered and written 32 KiB at a time (and at least once a second): a write
 * per access-log line would cost more CPU than the proxying itself, and each
 * asynchronous write is a system call on a libuv worker plus two thread
 * wake-ups (at 4 KiB, 0.12 writes and 0.2 futex calls per request; measured
 * with `npm run bench:sidecar-cost -- --tool syscalls`). The access log writes
 * to the destination directly (see {@link createAccessLog}).
 */
export function createSidecarLogger(
  level: pino.LevelWithSilent,
  destination: { write(line: string): unknown } = bufferedStdout(),
): Logger {
  const logger = pino({ level, base: LOG_BASE }, destination as pino.DestinationStream);
  ownDestinations.set(logger, destination);
  return logger;
}

/** The default destination: stdout, written asynchronously in large chunks. Exported for its test. */
export function bufferedStdout(): pino.DestinationStream & { flush(): void } {
  // sonic-boom refuses a minLength that is not below maxWrite (16 KiB by default).
  const destination = pino.destination({ dest: 1, sync: false, minLength: 32 * 1024, maxWrite: 64 * 1024 });
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
 */
export function createAccessLog(logger: Logger): AccessLog {
  if (!logger.isLevelEnabled("info")) return () => {};
  const destination = ownDestinations.get(logger);
  if (destination === undefined) return (entry) => logger.info(entry, "request");
  const prefix = `{"level":30,"time":`;
  const base = `,"service":${JSON.stringify(LOG_BASE.service)}`;
  // Lines of one event-loop turn go to the destination in one write: sonic-boom measures its whole
  // pending buffer on every write call, which made a call per line cost ~5 µs.
  let pending = "";
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending === "") return;
    const chunk = pending;
    pending = "";
    destination.write(chunk);
  };
  return (entry) => {
    let line = `${prefix}${Date.now()}${base},"requestId":${JSON.stringify(entry.requestId)},"method":${JSON.stringify(entry.method)},"path":${JSON.stringify(entry.path)},"status":${entry.status},"decision":"${entry.decision}"`;
    if (entry.keyId !== undefined) line += `,"keyId":${JSON.stringify(entry.keyId)}`;
    if (entry.teamId !== undefined) line += `,"teamId":${JSON.stringify(entry.teamId)}`;
    line += `,"durationMs":${entry.durationMs}`;
    if (entry.via !== undefined) line += `,"via":"${entry.via}"`;
    if (entry.wouldRefuse !== undefined) line += `,"wouldRefuse":${entry.wouldRefuse}`;
    pending += `${line},"msg":"request"}\n`;
    if (pending.length >= 16_384) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}
