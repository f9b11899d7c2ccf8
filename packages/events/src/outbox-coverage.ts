/** Offers waiting for the subscriber to apply the stream far enough; more are rarely in flight. */
const MAX_WAITING = 16;

/**
 * A subscriber's proof of currency: the latest time before which every
 * committed key change (every outbox row) has been applied to its cache.
 *
 * It is assembled from offers, each saying "every change committed before
 * `from` is in the stream at or below sequence `through`" (an
 * {@link OutboxCurrency} answer, or a token-service replica's own outbox
 * check), made good once the subscriber has applied the stream up to
 * `through`. Times are on the caller's clock only: a verifier offers the time
 * it sent its request, a replica the time of its own check.
 */
export interface OutboxCoverage {
  /**
   * The moment before which every committed change is applied; -Infinity
   * until the first proof. Never moves back.
   */
  coveredAt(): number;
  /**
   * Call when asking (before the request leaves); pass the ticket back to
   * {@link OutboxCoverage.offer}. An offer whose ticket predates a
   * {@link OutboxCoverage.reset} is ignored: its sequence may belong to a
   * stream position this subscriber no longer follows.
   */
  ticket(): number;
  /** Every change committed before `from` is in the stream at or below `through`. */
  offer(ticket: number, from: number, through: number): void;
  /** The subscriber has applied the stream up to `sequence` (a lower one after a gap is allowed). */
  applied(sequence: number): void;
  /** Drops offers not yet made good (a disconnect, a gap, a re-created stream); keeps {@link coveredAt}. */
  reset(): void;
}

interface Offer {
  readonly from: number;
  readonly through: number;
}

/**
 * Creates an {@link OutboxCoverage}. `applied` runs once per key event and is
 * a comparison when nothing waits; offers arrive once per heartbeat or round.
 *
 * @example
 * ```ts
 * const coverage = createOutboxCoverage();
 * const ticket = coverage.ticket();
 * const sentAt = Date.now();
 * const answer = await bus.requestOutboxCurrency({ verifierId }, 2_000);
 * coverage.offer(ticket, sentAt, Number(answer.publishedThroughSequence));
 * // for each event applied:
 * coverage.applied(sequence);
 * ```
 */
export function createOutboxCoverage(): OutboxCoverage {
  let covered = Number.NEGATIVE_INFINITY;
  let appliedSequence = 0;
  let generation = 0;
  /** Ordered by `through`, lowest first. */
  let waiting: Offer[] = [];

  function settle(): void {
    let settled = 0;
    for (const offer of waiting) {
      if (offer.through > appliedSequence) break;
      if (offer.from > covered) covered = offer.from;
      settled += 1;
    }
    if (settled > 0) waiting = waiting.slice(settled);
  }

  return {
    coveredAt: () => covered,
    ticket: () => generation,
    offer(ticket, from, through) {
      if (ticket !== generation || !Number.isFinite(from) || from <= covered) return;
      if (through <= appliedSequence) {
        covered = from;
        return;
      }
      const at = waiting.findIndex((offer) => offer.through > through);
      waiting.splice(at === -1 ? waiting.length : at, 0, { from, through });
      // Beyond the bound, drop the offer that would prove the least.
      if (waiting.length > MAX_WAITING) {
        let least = 0;
        for (let i = 1; i < waiting.length; i++)
          if ((waiting[i] as Offer).from < (waiting[least] as Offer).from) least = i;
        waiting.splice(least, 1);
      }
    },
    applied(sequence) {
      appliedSequence = sequence;
      if (waiting.length > 0 && (waiting[0] as Offer).through <= sequence) settle();
    },
    reset() {
      generation += 1;
      waiting = [];
    },
  };
}
