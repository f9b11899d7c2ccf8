// The chaos run's books: every key, when its revocation was asked for and when Revoke returned, and
// every request's send time and answer, judged against the staleness bound as it is recorded.
// Times are this process's monotonic clock (performance.now()); every process runs on this machine.

/** A key the load uses. */
export interface ChaosKey {
  readonly keyId: string;
  readonly token: string;
  /** When the first Revoke for it was sent; undefined while it is valid. */
  revokeSentAt?: number;
  /** When a Revoke for it returned OK: the commit happened before. */
  revokedAt?: number;
}

/** What came back for one request: an HTTP status, or no answer at all (connection refused, timeout). */
export type ChaosAnswer = number | "unreachable";

/** Running totals. */
export interface ChaosTotals {
  requests: number;
  accepts: number;
  /** Accepts of a revoked key sent more than the bound after its Revoke returned. */
  wrongAccepts: number;
  /** Valid keys refused with 401/403: a refusal that is not failing closed but a wrong answer. */
  wrongRefusals: number;
  /** Valid keys refused with a 5xx (the sidecar could not decide). */
  failClosed: number;
  /** Requests that got no HTTP answer (a sidecar down). */
  unreachable: number;
  /** Longest time from a Revoke's return to the send time of an accepted request with that key. */
  maxStalenessMs: number;
  /** The same, since the last {@link ChaosLedger.openWindow}. */
  windowStalenessMs: number;
}

/** The books. */
export interface ChaosLedger {
  /** Judges and counts one request. */
  record(key: ChaosKey, sentAt: number, answeredAt: number, answer: ChaosAnswer): void;
  /** A copy of the totals so far. */
  totals(): ChaosTotals;
  /** Starts measuring `windowStalenessMs` afresh (one fault's share). */
  openWindow(): void;
  /** The first few wrong answers, described, for the report. */
  readonly incidents: string[];
}

const MAX_INCIDENTS = 20;

/**
 * Creates empty books for a bound of `boundMs` (see `ChaosSettings.boundMs`).
 *
 * @example
 * ```ts
 * const ledger = createChaosLedger(4_000);
 * ledger.record(key, sentAt, performance.now(), 200);
 * ```
 */
export function createChaosLedger(boundMs: number): ChaosLedger {
  const totals: ChaosTotals = {
    requests: 0,
    accepts: 0,
    wrongAccepts: 0,
    wrongRefusals: 0,
    failClosed: 0,
    unreachable: 0,
    maxStalenessMs: 0,
    windowStalenessMs: 0,
  };
  const incidents: string[] = [];
  const note = (text: string) => {
    if (incidents.length < MAX_INCIDENTS) incidents.push(text);
  };

  return {
    incidents,
    totals: () => ({ ...totals }),
    openWindow() {
      totals.windowStalenessMs = 0;
    },
    record(key, sentAt, answeredAt, answer) {
      totals.requests += 1;
      if (answer === "unreachable") {
        totals.unreachable += 1;
        return;
      }
      const accepted = answer === 200;
      if (accepted) totals.accepts += 1;
      if (key.revokedAt !== undefined && sentAt > key.revokedAt) {
        if (!accepted) return;
        const staleness = sentAt - key.revokedAt;
        totals.maxStalenessMs = Math.max(totals.maxStalenessMs, staleness);
        totals.windowStalenessMs = Math.max(totals.windowStalenessMs, staleness);
        if (staleness > boundMs) {
          totals.wrongAccepts += 1;
          note(`wrong accept: ${key.keyId} accepted ${Math.round(staleness)} ms after Revoke returned`);
        }
        return;
      }
      // Sent before Revoke returned: either answer is right while the revocation is under way.
      if (accepted || (key.revokeSentAt !== undefined && key.revokeSentAt < answeredAt)) return;
      if (answer >= 500) {
        totals.failClosed += 1;
      } else {
        totals.wrongRefusals += 1;
        note(`wrong refusal: valid key ${key.keyId} got ${answer}`);
      }
    },
  };
}

/** The counts between two snapshots: what one fault added (staleness: see `windowStalenessMs`). */
export function totalsSince(before: ChaosTotals, after: ChaosTotals): ChaosTotals {
  return {
    requests: after.requests - before.requests,
    accepts: after.accepts - before.accepts,
    wrongAccepts: after.wrongAccepts - before.wrongAccepts,
    wrongRefusals: after.wrongRefusals - before.wrongRefusals,
    failClosed: after.failClosed - before.failClosed,
    unreachable: after.unreachable - before.unreachable,
    maxStalenessMs: after.windowStalenessMs,
    windowStalenessMs: after.windowStalenessMs,
  };
}
