import type { KeyEventBus, KeyEventSubscription } from "@latchkey/events";

/** How far one event reached. */
export interface PropagationReport {
  readonly liveVerifiers: number;
  readonly confirmed: number;
  /** Milliseconds from `since` to the slowest confirmation received. */
  readonly slowestMs: number;
  readonly complete: boolean;
}

interface LiveVerifier {
  lastSeen: number;
  intervalMs: number;
  appliedSequence: number;
}

interface Waiter {
  readonly pending: Set<string>;
  readonly confirmedAt: number[];
  sequence: number | undefined;
  readonly done: () => void;
}

/**
 * Knows which verifiers are live (heartbeats) and which events they applied
 * (acks), so Revoke can wait until every live verifier has dropped a key.
 */
export class PropagationTracker {
  readonly #verifiers = new Map<string, LiveVerifier>();
  readonly #waiters = new Map<number, Waiter>();
  // Sequences of recently published events, in case publication beats track().
  readonly #recent = new Map<number, number>();
  readonly #subscription: KeyEventSubscription;
  readonly #now: () => number;

  constructor(bus: KeyEventBus, now: () => number = () => performance.now()) {
    this.#now = now;
    this.#subscription = bus.onVerifierMessage((message) => {
      if (message.kind === "heartbeat") {
        const hb = message.heartbeat;
        const intervalMs = hb.interval ? Number(hb.interval.seconds) * 1000 + hb.interval.nanos / 1e6 : 1000;
        this.#seen(hb.verifierId, Number(hb.appliedSequence), Math.max(50, Math.min(intervalMs, 60_000)));
      } else {
        const ack = message.ack;
        const known = this.#verifiers.get(ack.verifierId);
        this.#seen(ack.verifierId, Number(ack.appliedSequence), known?.intervalMs ?? 1000);
        for (const id of ack.eventIds) this.#confirm(Number(id), ack.verifierId);
      }
    });
  }

  #seen(verifierId: string, appliedSequence: number, intervalMs: number): void {
    const entry = this.#verifiers.get(verifierId);
    const now = this.#now();
    if (entry) {
      entry.lastSeen = now;
      entry.intervalMs = intervalMs;
      entry.appliedSequence = Math.max(entry.appliedSequence, appliedSequence);
    } else {
      this.#verifiers.set(verifierId, { lastSeen: now, intervalMs, appliedSequence });
    }
    for (const [, waiter] of this.#waiters) {
      if (waiter.sequence !== undefined && appliedSequence >= waiter.sequence)
        this.#confirmWaiter(waiter, verifierId);
    }
  }

  #confirm(eventId: number, verifierId: string): void {
    const waiter = this.#waiters.get(eventId);
    if (waiter) this.#confirmWaiter(waiter, verifierId);
  }

  #confirmWaiter(waiter: Waiter, verifierId: string): void {
    if (!waiter.pending.delete(verifierId)) return;
    waiter.confirmedAt.push(this.#now());
    if (waiter.pending.size === 0) waiter.done();
  }

  /** Verifiers heard from within three of their heartbeat intervals. */
  liveVerifiers(): string[] {
    const now = this.#now();
    const live: string[] = [];
    for (const [id, entry] of this.#verifiers) {
      if (now - entry.lastSeen <= entry.intervalMs * 3) live.push(id);
      else if (now - entry.lastSeen > 600_000) this.#verifiers.delete(id);
    }
    return live;
  }

  /**
   * Starts waiting for an event before it is published, so no ack is missed.
   * Call {@link PropagationTracker.published} when its stream sequence is known.
   */
  track(eventId: number, since: number, timeoutMs: number): Promise<PropagationReport> {
    const live = this.liveVerifiers();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(timer);
        this.#waiters.delete(eventId);
        const confirmed = waiter.confirmedAt.length;
        resolve({
          liveVerifiers: live.length,
          confirmed,
          slowestMs: confirmed > 0 ? Math.max(0, Math.max(...waiter.confirmedAt) - since) : 0,
          complete: waiter.pending.size === 0,
        });
      };
      const waiter: Waiter = { pending: new Set(live), confirmedAt: [], sequence: undefined, done: finish };
      if (live.length === 0) return finish();
      this.#waiters.set(eventId, waiter);
      timer = setTimeout(finish, timeoutMs);
      const sequence = this.#recent.get(eventId);
      if (sequence !== undefined) this.published(eventId, sequence);
    });
  }

  /** Records an event's stream sequence: heartbeats at or past it confirm it too. */
  published(eventId: number, sequence: number): void {
    this.#recent.set(eventId, sequence);
    if (this.#recent.size > 10_000) {
      const oldest = this.#recent.keys().next().value;
      if (oldest !== undefined) this.#recent.delete(oldest);
    }
    const waiter = this.#waiters.get(eventId);
    if (!waiter) return;
    waiter.sequence = sequence;
    for (const id of [...waiter.pending]) {
      const entry = this.#verifiers.get(id);
      if (entry && entry.appliedSequence >= sequence) this.#confirmWaiter(waiter, id);
    }
  }

  /** Stops listening. */
  async close(): Promise<void> {
    for (const [, waiter] of this.#waiters) waiter.done();
    await this.#subscription.close();
  }
}
