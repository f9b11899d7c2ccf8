import { create } from "@bufbuild/protobuf";
import { type Duration, durationMs } from "@bufbuild/protobuf/wkt";
import { type Propagation, PropagationSchema } from "@latchkey/proto";
import type { ApiKeyRow } from "../db/tables.js";
import { invalidateKeys } from "../keys/key-invalidation.js";
import type { ServiceDeps } from "./service-deps.js";
import { invalidArgument } from "./validate.js";

const MAX_WAIT_MS = 30_000;

/**
 * A duration field in milliseconds (0 when unset), refused when negative or
 * over `maxMs`.
 *
 * @throws ConnectError INVALID_ARGUMENT naming `field`.
 */
export function durationField(value: Duration | undefined, field: string, maxMs: number): number {
  if (!value) return 0;
  const ms = durationMs(value);
  if (!Number.isFinite(ms) || ms < 0) throw invalidArgument(field, "must not be negative");
  if (ms > maxMs) throw invalidArgument(field, `must be at most ${maxMs / 1000} s`);
  return ms;
}

/** A revocation's `wait_timeout` in milliseconds: at most 30 s. */
export function waitTimeoutMs(value: Duration | undefined): number {
  return durationField(value, "wait_timeout", MAX_WAIT_MS);
}

/**
 * The step after a revocation committed (Revoke, RevokeKeychain): start
 * tracking its event when the caller waits (before the publisher is woken, so
 * no confirmation can arrive unseen), evict the key here and wake the
 * publisher, then wait up to `waitMs` for every live verifier to confirm.
 *
 * @returns the propagation report when the caller asked to wait, else undefined.
 */
export async function announceRevocation(
  deps: Pick<ServiceDeps, "cache" | "publisher" | "tracker">,
  key: Pick<ApiKeyRow, "id" | "token_hash">,
  eventId: number | undefined,
  wait: { readonly requested: boolean; readonly ms: number },
): Promise<Propagation | undefined> {
  const waiting =
    eventId !== undefined && wait.requested
      ? deps.tracker.track(eventId, performance.now(), wait.ms)
      : undefined;
  invalidateKeys(deps, [key]);
  if (!wait.requested) return undefined;
  const report = waiting ? await waiting : { liveVerifiers: 0, confirmed: 0, slowestMs: 0, complete: true };
  return create(PropagationSchema, {
    liveVerifiers: report.liveVerifiers,
    confirmed: report.confirmed,
    complete: report.complete,
    // Not durationFromMs: it keeps fractions of a nanosecond, which int32 nanos cannot carry.
    slowest: {
      seconds: BigInt(Math.floor(report.slowestMs / 1000)),
      nanos: Math.round((report.slowestMs % 1000) * 1e6),
    },
  });
}
