import { create } from "@bufbuild/protobuf";
import type { KeyEventBus, OutboxCoverage, OutboxCurrencyQuestion } from "@latchkey/events";
import { OutboxCurrencySchema } from "@latchkey/proto";
import type { Logger } from "pino";

/** Rounds remembered: how far back a round may look for one that proves its pending rows newer. */
const HISTORY = 64;
/** Questions are kept at most this long; the verifier has given up by then. */
const QUESTION_TTL_MS = 10_000;
/** Questions kept waiting at most (a flood drops the oldest; their verifiers simply time out). */
const MAX_WAITING = 10_000;

/** What a round found: a proof, rows it cannot prove published yet, or no read at all. */
export type CurrencyRoundOutcome = "proven" | "pending" | "failed";

/** Options of {@link startOutboxCurrency}. */
export interface OutboxCurrencyOptions {
  readonly bus: KeyEventBus;
  /**
   * Ids of unpublished outbox rows, IMPORTED events left out, lowest first, at
   * most `limit`: one read, whose snapshot is taken after the call starts.
   */
  readonly pendingIds: (limit: number) => Promise<readonly number[]>;
  /** Time between the starts of two rounds. */
  readonly intervalMs: number;
  /** This replica, named in answers. */
  readonly replicaId: string;
  /** This replica's row cache proof of currency: each proven round is offered to it. */
  readonly coverage?: OutboxCoverage;
  readonly logger: Logger;
  /** Unpublished rows read per round (default 1,000); more than this proves nothing that round. */
  readonly maxPendingRows?: number;
  /** Told each round's outcome (metrics). */
  readonly onRound?: (outcome: CurrencyRoundOutcome) => void;
  /** This process's monotonic clock (default `performance.now`); the only clock used. */
  readonly now?: () => number;
}

/** A running outbox currency check. */
export interface OutboxCurrencyHandle {
  /** Stops the rounds and stops hearing questions; a round in progress is left to end on its own. */
  close(): Promise<void>;
}

interface Round {
  readonly startedAt: number;
  /** The unpublished ids it read, or undefined when there were too many to list. */
  readonly pending: ReadonlySet<number> | undefined;
}

interface WaitingQuestion {
  readonly receivedAt: number;
  readonly question: OutboxCurrencyQuestion;
}

/**
 * Proves, several times a second, how far the outbox has been published, and
 * answers verifiers' outbox currency questions with it.
 *
 * A round notes the time `t`, reads the ids of unpublished rows (a snapshot
 * taken after `t`), then reads the stream's last sequence `S`. With no
 * unpublished row, every row committed before `t` was published, so its event
 * is in the stream at or below `S`. With some, the round looks back for the
 * latest earlier round whose unpublished ids share none with them: a row
 * unpublished now and not seen then was not committed when that round read,
 * so every row committed before that round's `t` is published. A row is never
 * unpublished again once published, which is what makes this hold.
 *
 * A question is answered by the first proven round whose `t` is not before it
 * arrived, so the answer covers everything committed before the verifier
 * asked. Every time compared is this process's own monotonic clock, and every
 * order is causal (a request before its arrival, a snapshot after its call):
 * clocks of other machines never enter, so skew cannot make a proof wrong.
 * Every replica answers every question it can prove (replicas share one
 * outbox, so any one vouches for all); one that cannot reach PostgreSQL or
 * NATS stays silent, and a verifier that hears nobody stops trusting its cache.
 *
 * @example
 * ```ts
 * const currency = startOutboxCurrency({ bus, pendingIds: (n) => pendingCurrencyIds(db, n),
 *   intervalMs: 250, replicaId, coverage, logger });
 * await currency.close();
 * ```
 */
export function startOutboxCurrency(options: OutboxCurrencyOptions): OutboxCurrencyHandle {
  const { bus, logger, coverage } = options;
  const now = options.now ?? (() => performance.now());
  const maxPending = options.maxPendingRows ?? 1_000;
  const history: Round[] = [];
  let waiting: WaitingQuestion[] = [];
  let closed = false;
  let failing = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const questions = bus.onOutboxCurrencyRequest((question) => {
    if (closed) return;
    if (waiting.length >= MAX_WAITING) waiting.shift();
    waiting.push({ receivedAt: now(), question });
  });

  /** The latest time before which every committed row is published, or undefined when not provable. */
  function provenSince(startedAt: number, pending: readonly number[]): number | undefined {
    if (pending.length === 0) return startedAt;
    if (pending.length > maxPending) return undefined;
    for (let i = history.length - 1; i >= 0; i--) {
      const round = history[i] as Round;
      if (round.pending === undefined) continue;
      const seen = round.pending;
      if (!pending.some((id) => seen.has(id))) return round.startedAt;
    }
    return undefined;
  }

  /** Answers the questions that arrived before `provenFrom` (none when undefined); drops expired ones. */
  function answer(provenFrom: number | undefined, through: number): void {
    if (waiting.length === 0) return;
    const reply =
      provenFrom === undefined
        ? undefined
        : create(OutboxCurrencySchema, {
            publishedThroughSequence: BigInt(through),
            replicaId: options.replicaId,
          });
    const expired = now() - QUESTION_TTL_MS;
    waiting = waiting.filter(({ receivedAt, question }) => {
      if (reply !== undefined && provenFrom !== undefined && receivedAt <= provenFrom) {
        question.respond(reply);
        return false;
      }
      return receivedAt > expired;
    });
  }

  async function round(): Promise<void> {
    const ticket = coverage?.ticket() ?? 0;
    const startedAt = now();
    let pending: readonly number[];
    let through: number;
    try {
      // No proof without a connection: and a bus still making its first one would keep the read waiting.
      if (!bus.isConnected()) throw new Error("the key event bus is not connected");
      pending = await options.pendingIds(maxPending + 1);
      // Read after the outbox: every row it found published had reached the stream by now.
      through = await bus.lastSequence();
    } catch (error) {
      if (!failing)
        logger.warn({ err: error }, "cannot prove the outbox published; verifiers will re-verify");
      failing = true;
      options.onRound?.("failed");
      answer(undefined, 0);
      return;
    }
    if (failing) logger.info("outbox currency proven again");
    failing = false;
    const provenFrom = provenSince(startedAt, pending);
    history.push({
      startedAt,
      pending: pending.length > maxPending ? undefined : new Set(pending),
    });
    if (history.length > HISTORY) history.shift();
    if (provenFrom === undefined) {
      options.onRound?.("pending");
      answer(undefined, through);
      return;
    }
    options.onRound?.("proven");
    coverage?.offer(ticket, provenFrom, through);
    answer(provenFrom, through);
  }

  async function loop(): Promise<void> {
    if (closed) return;
    const startedAt = now();
    await round();
    if (closed) return;
    timer = setTimeout(loop, Math.max(0, options.intervalMs - (now() - startedAt)));
    timer.unref();
  }
  void loop();

  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      waiting = [];
      await questions.close();
    },
  };
}
