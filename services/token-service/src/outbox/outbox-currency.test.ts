import { create } from "@bufbuild/protobuf";
import { createMemoryKeyEventBus, createOutboxCoverage, type KeyEventBus } from "@latchkey/events";
import {
  KeyEventSchema,
  KeyEventType,
  type OutboxCurrency,
  OutboxCurrencyRequestSchema,
} from "@latchkey/proto";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type CurrencyRoundOutcome,
  type OutboxCurrencyHandle,
  startOutboxCurrency,
} from "./outbox-currency.js";

// The proof logic of the outbox currency check, round by round, with the outbox read scripted and
// the clock faked. The same check against real PostgreSQL and NATS: test/revocation/.

const INTERVAL = 100;
let bus: KeyEventBus;
let handle: OutboxCurrencyHandle | undefined;
/** What the next outbox read returns; a function to make it wait or fail. */
let outbox: () => Promise<readonly number[]>;
let rounds: CurrencyRoundOutcome[];

function start(options: { maxPendingRows?: number } = {}) {
  const coverage = createOutboxCoverage();
  handle = startOutboxCurrency({
    bus,
    pendingIds: () => outbox(),
    intervalMs: INTERVAL,
    replicaId: "ts_test",
    coverage,
    logger: pino({ level: "silent" }),
    onRound: (outcome) => rounds.push(outcome),
    now: () => Date.now(),
    ...options,
  });
  return coverage;
}

/** Asks the way a verifier does; resolves with the answer or "none" after the timeout. */
function ask(timeoutMs = 10 * INTERVAL): Promise<OutboxCurrency | "none"> {
  return bus
    .requestOutboxCurrency(create(OutboxCurrencyRequestSchema, { verifierId: "v_test" }), timeoutMs)
    .catch(() => "none" as const);
}

async function publishEvents(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await bus.publish(
      create(KeyEventSchema, { id: BigInt(i + 1), type: KeyEventType.REVOKED, keyId: `key_${i}` }),
      `m-${i}-${Math.random()}`,
    );
  }
}

beforeEach(() => {
  vi.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z") });
  bus = createMemoryKeyEventBus();
  outbox = async () => [];
  rounds = [];
});

afterEach(async () => {
  await handle?.close();
  handle = undefined;
  await bus.close();
  vi.useRealTimers();
});

describe("outbox currency", () => {
  it("answers with the stream's end once a round finds nothing unpublished", async () => {
    await publishEvents(3);
    start();
    const answer = ask();
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(await answer).toMatchObject({ publishedThroughSequence: 3n, replicaId: "ts_test" });
    expect(rounds).toContain("proven");
  });

  it("answers a question only from a round that started after it arrived", async () => {
    let release = () => {};
    outbox = () => new Promise((resolve) => (release = () => resolve([])));
    start();
    await vi.advanceTimersByTimeAsync(5); // the first round (t=0) is still reading the outbox
    let answered: OutboxCurrency | "none" | undefined;
    void ask().then((a) => (answered = a));
    await vi.advanceTimersByTimeAsync(10);
    outbox = async () => [];
    release(); // that round proves only what was committed before it started
    await vi.advanceTimersByTimeAsync(1);
    expect(rounds).toEqual(["proven"]);
    expect(answered).toBeUndefined();
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(answered).toMatchObject({ publishedThroughSequence: 0n });
  });

  it("with rows unpublished, proves from the latest round that had not seen any of them", async () => {
    // Round 1 (t=0): row 1 unpublished.
    outbox = async () => [1];
    const coverage = start();
    await vi.advanceTimersByTimeAsync(10);
    const afterRound1 = ask(); // t=10
    // Round 2 (t=100): rows 1 and 2; round 1 saw row 1, so nothing is proven.
    outbox = async () => [1, 2];
    await vi.advanceTimersByTimeAsync(INTERVAL - 10);
    expect(rounds).toEqual(["pending", "pending"]);
    // Round 3 (t=200): rows 2 and 3. Round 2 saw row 2, but round 1 saw neither: both were
    // committed after round 1 read, so everything committed before t=0 is published.
    outbox = async () => [2, 3];
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(rounds).toEqual(["pending", "pending", "proven"]);
    expect(coverage.coveredAt()).toBe(new Date("2030-01-01T00:00:00Z").getTime());
    // A question asked after t=0 waits for a round that proves more.
    let answered: OutboxCurrency | "none" | undefined;
    void afterRound1.then((a) => (answered = a));
    await vi.advanceTimersByTimeAsync(0);
    expect(answered).toBeUndefined();
    outbox = async () => [];
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(answered).toMatchObject({ publishedThroughSequence: 0n });
    expect(coverage.coveredAt()).toBe(new Date("2030-01-01T00:00:00.300Z").getTime());
  });

  it("proves nothing from more unpublished rows than it reads, nor from such a round later", async () => {
    outbox = async () => [1, 2, 3];
    start({ maxPendingRows: 2 });
    await vi.advanceTimersByTimeAsync(10);
    const question = ask();
    // Rows 4 and 5 are new, but the round before listed no rows it could compare with.
    outbox = async () => [4, 5];
    await vi.advanceTimersByTimeAsync(INTERVAL - 10);
    expect(rounds).toEqual(["pending", "pending"]);
    outbox = async () => [];
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(await question).toMatchObject({ publishedThroughSequence: 0n });
  });

  it("stays silent while the outbox or the stream cannot be read", async () => {
    outbox = async () => {
      throw new Error("connection refused");
    };
    start();
    const question = ask(5 * INTERVAL);
    await vi.advanceTimersByTimeAsync(5 * INTERVAL);
    expect(await question).toBe("none");
    expect(rounds.every((outcome) => outcome === "failed")).toBe(true);
    // Back: the next question is answered.
    outbox = async () => [];
    const next = ask();
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(await next).toMatchObject({ publishedThroughSequence: 0n });
  });

  it("forgets a question after 10 s: its verifier has given up, and an answer would prove little", async () => {
    outbox = async () => {
      throw new Error("connection refused");
    };
    start();
    await vi.advanceTimersByTimeAsync(10);
    const stale = ask(60_000);
    await vi.advanceTimersByTimeAsync(10_500);
    outbox = async () => [];
    const fresh = ask(60_000);
    await vi.advanceTimersByTimeAsync(2 * INTERVAL);
    expect(await fresh).toMatchObject({ publishedThroughSequence: 0n });
    let staleAnswer: OutboxCurrency | "none" | undefined;
    void stale.then((a) => (staleAnswer = a));
    await vi.advanceTimersByTimeAsync(0);
    expect(staleAnswer).toBeUndefined();
  });

  it("offers each proof to the row cache's coverage, which holds it until the stream is applied", async () => {
    await publishEvents(2);
    const coverage = start();
    coverage.applied(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(coverage.coveredAt()).toBe(Number.NEGATIVE_INFINITY);
    coverage.applied(2);
    expect(coverage.coveredAt()).toBe(new Date("2030-01-01T00:00:00Z").getTime());
  });

  it("stops answering when closed", async () => {
    start();
    await handle?.close();
    const question = ask(3 * INTERVAL);
    await vi.advanceTimersByTimeAsync(3 * INTERVAL);
    expect(await question).toBe("none");
  });
});
