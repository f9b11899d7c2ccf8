import { randomUUID } from "node:crypto";

/** The header (gRPC metadata key) that carries a call's request id, both ways. */
export const REQUEST_ID_HEADER = "x-request-id";

// Anything else from the client is replaced: the id goes into logs verbatim, so
// it must not be able to forge log lines or blow up their size.
const SANE_REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * The request id of a call: the client's `x-request-id` when it is 1–128
 * characters of `[A-Za-z0-9._-]`, otherwise a new random UUID.
 */
export function resolveRequestId(fromClient: string | null | undefined): string {
  return fromClient !== null && fromClient !== undefined && SANE_REQUEST_ID.test(fromClient)
    ? fromClient
    : randomUUID();
}
