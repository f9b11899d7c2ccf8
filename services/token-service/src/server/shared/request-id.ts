import { randomBytes } from "node:crypto";

/** The header (gRPC metadata key) that carries a call's request id, both ways. */
export const REQUEST_ID_HEADER = "x-request-id";

// Anything else from the client is replaced: the id goes into logs verbatim, so
// it must not be able to forge log lines or blow up their size.
const SANE_REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

// Request ids correlate logs, audit rows and responses; nothing treats one as a
// secret or a capability (no lookup, no authorization uses it), so they need
// to be unique, not unguessable: a random per-process prefix (72 bits, so
// replicas do not collide) and a counter, instead of a random UUID per call
// (which made and formatted 16 random bytes on every Verify).
const PROCESS_PREFIX = randomBytes(9).toString("base64url");
let issued = 0;

/**
 * The request id of a call: the client's `x-request-id` when it is 1–128
 * characters of `[A-Za-z0-9._-]`, otherwise a new one, unique across
 * processes (e.g. `q3Zk0P1mAbCd-1a`).
 */
export function resolveRequestId(fromClient: string | null | undefined): string {
  if (fromClient !== null && fromClient !== undefined && SANE_REQUEST_ID.test(fromClient)) return fromClient;
  issued = issued === Number.MAX_SAFE_INTEGER ? 1 : issued + 1;
  return `${PROCESS_PREFIX}-${issued.toString(36)}`;
}
