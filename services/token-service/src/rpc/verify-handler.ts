import { hash as digest } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  KeySchema,
  type VerifyRequest,
  type VerifyResponse,
  VerifyResponseSchema,
  VerifyResult,
} from "@latchkey/proto";
import { tracingEnabled } from "@latchkey/telemetry";
import {
  effectiveScopes,
  type FormatRejection,
  MAX_TOKEN_LENGTH,
  missingScopes,
  parseTokenWith,
} from "@latchkey/token";
import { trace } from "@opentelemetry/api";
import type { ApiKeyRow } from "../db/tables.js";
import { findKeyByHash } from "../keys/key.repository.js";
import { keyFromRow } from "../keys/key-mapper.js";
import type { CachedKey } from "../keys/key-row-cache.js";
import { type KeyUnusableReason, keyUsability } from "../keys/key-usability.js";
import { countVerifyCall } from "../keys/verify-rate-limits.js";
import { markImmutable } from "../server/shared/immutable-message.js";
import { takeUse, usageLimitOf } from "../usage/usage-limit.js";
import type { ServiceDeps } from "./service-deps.js";
import { invalidArgument, rejectUnknownFields, requireScopes } from "./validate.js";

const NOT_FOUND = markImmutable(create(VerifyResponseSchema, { result: VerifyResult.NOT_FOUND }));
const REVOKED = markImmutable(create(VerifyResponseSchema, { result: VerifyResult.REVOKED }));
const EXPIRED = markImmutable(create(VerifyResponseSchema, { result: VerifyResult.EXPIRED }));
const DISABLED = markImmutable(create(VerifyResponseSchema, { result: VerifyResult.DISABLED }));
const NO_SCOPES: readonly string[] = Object.freeze([]);
/**
 * The answer to a token refused before any lookup, with the reason: EXPIRED
 * for a signed key past its own expiry or its signing key's end, MALFORMED for
 * everything else (no accepted format, a bad checksum, a forged signature).
 */
const REFUSED: Readonly<Record<FormatRejection, VerifyResponse>> = Object.fromEntries(
  (
    [
      "empty",
      "too_long",
      "no_format",
      "shape",
      "checksum",
      "claims",
      "unknown_signing_key",
      "signature",
      "signing_key_expired",
      "expired",
    ] as const
  ).map((reason) => [
    reason,
    markImmutable(
      create(VerifyResponseSchema, {
        result: reason.endsWith("expired") ? VerifyResult.EXPIRED : VerifyResult.MALFORMED,
        reason,
      }),
    ),
  ]),
) as Record<FormatRejection, VerifyResponse>;
const UNUSABLE: Readonly<Record<KeyUnusableReason, VerifyResponse>> = {
  revoked: REVOKED,
  disabled: DISABLED,
  expired: EXPIRED,
};

/** A database lookup in flight, shared by concurrent misses for one token. */
interface Lookup {
  /** The row cache's epoch when it started. */
  readonly epoch: number;
  /**
   * A key event sequence whose change (and every earlier one's) had committed
   * before it started, so it answers callers asking for state this fresh.
   */
  readonly covers: bigint;
  readonly promise: Promise<CachedKey>;
}

/**
 * The Verify RPC: the path users call most. The row cache first (keyed by the
 * token's SHA-256), then, on a miss, the local checks (shape, checksum: no
 * I/O) and one indexed lookup by hash, with concurrent misses for one token
 * sharing that lookup. Only well-formed tokens are ever cached, so a hit needs
 * no shape check: a cached hash is the hash of a token that passed it. A caller that has
 * applied key events this replica has not (`min_event_sequence`) skips the row
 * cache and gets a lookup that started after those events' changes committed.
 */
export function createVerifyHandler(
  deps: ServiceDeps,
): (request: VerifyRequest) => VerifyResponse | Promise<VerifyResponse> {
  const inflight = new Map<string, Lookup>();
  // When each signing key's tokens stop being accepted, for a signed key's row found in the cache.
  const signingKeyEnds = new Map(deps.formats.signingKeys.map((key) => [key.kid, key.notAfter]));

  async function load(hashHex: string, minSequence: bigint): Promise<CachedKey> {
    const epoch = deps.cache.epoch;
    // Only share a lookup that started after the latest invalidation (one that
    // started before a Revoke committed may still return the old row), and
    // after the changes this caller has seen events for. Events are published
    // after their change commits and in stream order, so a lookup that started
    // once event N was applied here, or was asked for by a caller that had
    // applied N, sees every change up to N.
    const shared = inflight.get(hashHex);
    if (shared && shared.epoch === epoch && shared.covers >= minSequence) return shared.promise;
    const applied = deps.cache.appliedSequence;
    const covers = applied > minSequence ? applied : minSequence;
    const promise: Promise<CachedKey> = findKeyByHash(deps.db, Buffer.from(hashHex, "hex"))
      .then((row) => {
        const value: CachedKey = row ? cachedKey(row) : null;
        deps.cache.set(hashHex, value, epoch);
        return value;
      })
      .finally(() => {
        if (inflight.get(hashHex)?.promise === promise) inflight.delete(hashHex);
      });
    inflight.set(hashHex, { epoch, covers, promise });
    return promise;
  }

  const metrics = deps.metrics;
  const traced = tracingEnabled();
  const counted = (response: VerifyResponse): VerifyResponse => {
    metrics?.verified(response.result);
    if (traced) annotateSpan(response);
    return response;
  };

  // Synchronous on a cache hit: the common case pays for no promise, no token parse.
  return (request) => {
    rejectUnknownFields(request, "VerifyRequest");
    const { token } = request;
    if (token === "") throw invalidArgument("token", "is required");
    // A UTF-8 character is at most 3 bytes per UTF-16 unit: count bytes only when that could be too many.
    if (token.length * 3 > MAX_TOKEN_LENGTH && Buffer.byteLength(token, "utf8") > MAX_TOKEN_LENGTH) {
      throw invalidArgument("token", `must be at most ${MAX_TOKEN_LENGTH} bytes`);
    }
    const required =
      request.requiredScopes.length > 0
        ? requireScopes(request.requiredScopes, "required_scopes")
        : NO_SCOPES;
    // The same digest as hashToken, as hex straight from the native side (the row cache's key).
    const hashHex = digest("sha256", token, "hex");
    // Unless this replica has proved, recently enough for the caller, that its
    // cache reflects every committed change (events reach it and the outbox is
    // published: outbox-currency.ts), a cached row could miss a revocation made
    // elsewhere or still waiting in the outbox: read through to the database
    // instead. The same when the caller has applied events this replica has not.
    const minSequence = request.minEventSequence;
    const bypass =
      !deps.rowCacheCurrent(request.maxStalenessMs ?? deps.verifyCacheMaxStaleMs) ||
      minSequence > deps.cache.appliedSequence;
    const hit = bypass ? undefined : deps.cache.get(hashHex, minSequence);
    const count = request.countRateLimit;
    if (hit) {
      metrics?.rowCache("hit");
      const answered = answer(hit.value, required, count);
      return answered instanceof Promise ? answered.then(counted) : counted(answered);
    }
    // Only now the local checks, against every accepted format (a signed key's signature too):
    // a malformed or forged token is answered without counting a lookup.
    const parsed = parseTokenWith(deps.formats, token);
    if (!parsed.ok) return counted(REFUSED[parsed.reason]);
    metrics?.rowCache(bypass ? "bypass" : "miss");
    return load(hashHex, minSequence)
      .then((found) => answer(found, required, count))
      .then(counted);
  };

  /**
   * The verdict, then the two checks that need the database, in this order:
   * the key's own rate limits when the caller asks (`count_rate_limit`; one
   * statement per limit, exact across replicas), and a usage-limited key's use
   * (taken only when the call is admitted). A promise only for those keys.
   */
  function answer(
    found: CachedKey,
    required: readonly string[],
    count: boolean,
  ): VerifyResponse | Promise<VerifyResponse> {
    const response = verdict(found, required);
    if (response.result !== VerifyResult.VALID || !found) return response;
    const limits = found.row.rate_limits ?? [];
    if (count && limits.length > 0) {
      return countVerifyCall(deps.db, found.row.id, limits, Date.now()).then(({ admitted, states }) => {
        if (!admitted) {
          return create(VerifyResponseSchema, {
            result: VerifyResult.RATE_LIMITED,
            key: found.key,
            rateLimits: states,
          });
        }
        if (found.row.remaining !== null) return metered(found, states);
        return create(VerifyResponseSchema, {
          result: VerifyResult.VALID,
          key: found.key,
          rateLimits: states,
        });
      });
    }
    if (found.row.remaining !== null) return metered(found, []);
    return response;
  }

  /** The answer before anything is counted: NOT_FOUND, unusable, INSUFFICIENT_SCOPE or VALID. */
  function verdict(found: CachedKey, required: readonly string[]): VerifyResponse {
    if (!found) return NOT_FOUND;
    const { row, key, valid, scopes } = found;
    const now = Date.now();
    const usability = keyUsability(row, now);
    if (!usability.usable) return UNUSABLE[usability.reason];
    // A row cache hit skips the parse: a signed key's signing key may have ended since it was cached.
    if (row.signing_kid !== null && !((signingKeyEnds.get(row.signing_kid) ?? 0) > now)) {
      return REFUSED.signing_key_expired;
    }
    deps.lastUsed.record(row.id, now);
    if (grantsAll(scopes, required)) return valid;
    const missing = missingScopes(scopes, required);
    if (missing.length > 0) {
      return create(VerifyResponseSchema, {
        result: VerifyResult.INSUFFICIENT_SCOPE,
        key,
        missingScopes: missing,
      });
    }
    return valid;
  }

  /**
   * Takes one use of a usage-limited key (`usage/usage-limit.ts`: one atomic
   * UPDATE, exact across replicas). The answer carries the uses left, so it is
   * built per call; verifiers never cache it.
   */
  async function metered(
    { row, key, valid }: NonNullable<CachedKey>,
    rateLimits: VerifyResponse["rateLimits"],
  ): Promise<VerifyResponse> {
    const taken = await takeUse(deps.db, row.id);
    if (taken.kind === "unlimited") {
      return rateLimits.length === 0
        ? valid
        : create(VerifyResponseSchema, { result: VerifyResult.VALID, key, rateLimits });
    }
    const remaining = taken.kind === "taken" ? taken.remaining : 0;
    return create(VerifyResponseSchema, {
      result: taken.kind === "taken" ? VerifyResult.VALID : VerifyResult.USAGE_EXCEEDED,
      key: create(KeySchema, { ...key, usageLimit: usageLimitOf(row, remaining) }),
      rateLimits,
    });
  }
}

/** The call's span (tracing on) gets the answer: result, key id, team id; never the token or its hash. */
function annotateSpan(response: VerifyResponse): void {
  const span = trace.getActiveSpan();
  if (span === undefined || !span.isRecording()) return;
  span.setAttribute("latchkey.verify.result", VerifyResult[response.result] ?? String(response.result));
  if (response.key !== undefined)
    span.setAttributes({ "latchkey.key_id": response.key.id, "latchkey.team_id": response.key.teamId });
}

/** Whether `scopes` holds every required one: the common answer, found without making an array. */
function grantsAll(scopes: ReadonlySet<string>, required: readonly string[]): boolean {
  for (let i = 0; i < required.length; i++) if (!scopes.has(required[i] as string)) return false;
  return true;
}

/** A row with its API shape and its VALID answer, built once per cache fill. */
function cachedKey(row: ApiKeyRow): NonNullable<CachedKey> {
  const key = keyFromRow(row);
  return {
    row,
    key,
    scopes: effectiveScopes(row.scopes),
    valid: markImmutable(create(VerifyResponseSchema, { result: VerifyResult.VALID, key })),
  };
}
