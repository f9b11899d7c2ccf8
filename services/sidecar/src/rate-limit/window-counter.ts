/**
 * One limit's count for one subject (a key, a client address) as a sliding
 * window over two fixed windows aligned to the epoch, so every sidecar agrees
 * on which window a request falls in without talking. The estimate of the last
 * `windowMs` is `previous × (1 − elapsed/window) + current`, where each of the
 * two is what this process admitted plus what its peers reported.
 */
export class WindowCounter {
  /** Index (`floor(now / windowMs)`) of the current fixed window. */
  index = 0;
  localCurrent = 0;
  localPrevious = 0;
  remoteCurrent = 0;
  remotePrevious = 0;
  /** How much of `localCurrent`/`localPrevious` has been sent to peers. */
  sentCurrent = 0;
  sentPrevious = 0;
  /** Set when the counter left its table; a holder then looks it up again. */
  evicted = false;
  /** Set while it has counts its peers have not heard of. */
  dirty = false;

  constructor(
    /** `<subject>|<limit name>|<window ms>`: the same on every sidecar, so peers' counts meet. */
    readonly id: string,
    readonly windowMs: number,
  ) {}

  /** Moves the windows forward to `index`. */
  roll(index: number): void {
    if (index === this.index) return;
    if (index === this.index + 1) {
      this.localPrevious = this.localCurrent;
      this.remotePrevious = this.remoteCurrent;
      this.sentPrevious = this.sentCurrent;
    } else if (index > this.index) {
      // Unsent counts of a window two back no longer matter to anyone's estimate.
      this.localPrevious = 0;
      this.remotePrevious = 0;
      this.sentPrevious = 0;
    } else return;
    this.index = index;
    this.localCurrent = 0;
    this.remoteCurrent = 0;
    this.sentCurrent = 0;
  }

  /**
   * The estimated count of the last window at `now`, counting peers' reports
   * (`global`) or only this process's admissions.
   */
  estimate(now: number, global: boolean): number {
    this.roll(Math.floor(now / this.windowMs));
    const weight = 1 - (now - this.index * this.windowMs) / this.windowMs;
    return global
      ? (this.localPrevious + this.remotePrevious) * weight + this.localCurrent + this.remoteCurrent
      : this.localPrevious * weight + this.localCurrent;
  }

  /** Counts one admitted request (after {@link estimate} rolled the windows to now). */
  admit(): void {
    this.localCurrent += 1;
    this.dirty = true;
  }

  /** Adds a peer's count for window `index`; a count for a window that no longer matters is dropped. */
  addRemote(index: number, count: number): void {
    if (index > this.index) this.roll(index);
    if (index === this.index) this.remoteCurrent += count;
    else if (index === this.index - 1) this.remotePrevious += count;
  }

  /**
   * Milliseconds from `now` until an estimate of `budget` − 1 or less lets one
   * more request in: while the current window's count alone is under the
   * budget, the previous window's weight has to fall far enough; else the next
   * window's weight on this one's count has to.
   */
  msUntilAdmitted(now: number, budget: number, global: boolean): number {
    const previous = global ? this.localPrevious + this.remotePrevious : this.localPrevious;
    const current = global ? this.localCurrent + this.remoteCurrent : this.localCurrent;
    const start = this.index * this.windowMs;
    const room = budget - 1;
    if (current <= room) {
      if (previous <= 0) return 0;
      // previous × (1 − f) + current ≤ room  ⇔  f ≥ 1 − (room − current) / previous
      const fraction = 1 - (room - current) / previous;
      return Math.max(0, start + fraction * this.windowMs - now);
    }
    // In the next window: current × (1 − f) ≤ room.
    const fraction = room <= 0 ? 1 : 1 - room / current;
    return Math.max(0, start + this.windowMs + fraction * this.windowMs - now);
  }
}
