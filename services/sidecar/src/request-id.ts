import { randomBytes } from "node:crypto";

// A random per-process prefix and a counter: unique across replicas, and far cheaper per request
// than a random UUID.
const prefix = randomBytes(6).toString("base64url");
let counter = 0;

/**
 * A new request id, e.g. `Xb3k9QaZ-1f`. Inbound `X-Request-Id` values are kept
 * instead when they look like ids (see `scanRequestHeaders`).
 */
export function nextRequestId(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}-${counter.toString(36)}`;
}
