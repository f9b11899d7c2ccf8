// Node's network errors that mean "the other side is not there (yet)".
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

// PostgreSQL SQLSTATEs of a server that is going away or full: class 08
// (connection exception), 57P01–57P03 (shutting down, cannot connect now),
// 53300 (too many connections).
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[123]|53300)$/;

// pg and pg-pool report a lost or unobtainable connection only in the message.
const POOL_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

/**
 * True when `error` (or an error in its `cause` chain) says a backing service,
 * such as PostgreSQL, cannot be reached right now. Such failures become
 * `UNAVAILABLE` (retry later) rather than `INTERNAL` (a bug), so callers, the
 * verifier among them, know to retry or fail closed.
 */
export function isUnavailableError(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code))) return true;
    if (POOL_MESSAGES.test(current.message)) return true;
    current = current.cause;
  }
  return false;
}
