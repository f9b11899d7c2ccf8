import { describe, expect, it } from "vitest";
import { createOutboxCoverage } from "./outbox-coverage.js";

describe("outbox coverage", () => {
  it("covers nothing until the first proof", () => {
    expect(createOutboxCoverage().coveredAt()).toBe(Number.NEGATIVE_INFINITY);
  });

  it("takes a proof at once when the stream is already applied that far", () => {
    const coverage = createOutboxCoverage();
    coverage.applied(10);
    coverage.offer(coverage.ticket(), 1_000, 10);
    expect(coverage.coveredAt()).toBe(1_000);
  });

  it("holds a proof until the subscriber has applied the sequence it names", () => {
    const coverage = createOutboxCoverage();
    coverage.applied(5);
    const ticket = coverage.ticket();
    coverage.offer(ticket, 1_000, 8);
    coverage.offer(ticket, 2_000, 12);
    coverage.applied(7);
    expect(coverage.coveredAt()).toBe(Number.NEGATIVE_INFINITY);
    coverage.applied(8);
    expect(coverage.coveredAt()).toBe(1_000);
    coverage.applied(12);
    expect(coverage.coveredAt()).toBe(2_000);
  });

  it("never moves back: an older proof arriving late changes nothing", () => {
    const coverage = createOutboxCoverage();
    coverage.applied(20);
    coverage.offer(coverage.ticket(), 5_000, 20);
    coverage.offer(coverage.ticket(), 4_000, 3);
    expect(coverage.coveredAt()).toBe(5_000);
  });

  it("ignores a proof asked for before a reset, and drops the ones waiting", () => {
    const coverage = createOutboxCoverage();
    coverage.applied(100);
    const before = coverage.ticket();
    coverage.offer(before, 1_000, 150);
    // A gap: the stream was re-created and sequences restarted.
    coverage.reset();
    coverage.applied(3);
    coverage.offer(before, 2_000, 3);
    coverage.applied(200);
    expect(coverage.coveredAt()).toBe(Number.NEGATIVE_INFINITY);
    coverage.offer(coverage.ticket(), 3_000, 200);
    expect(coverage.coveredAt()).toBe(3_000);
  });

  it("keeps a bounded number of waiting proofs, dropping the one that would prove least", () => {
    const coverage = createOutboxCoverage();
    const ticket = coverage.ticket();
    for (let i = 1; i <= 40; i++) coverage.offer(ticket, i * 100, 1_000 + i);
    coverage.applied(1_040);
    expect(coverage.coveredAt()).toBe(4_000);
  });

  it("refuses a proof from a time that is not a number", () => {
    const coverage = createOutboxCoverage();
    coverage.offer(coverage.ticket(), Number.NaN, 0);
    coverage.offer(coverage.ticket(), Number.POSITIVE_INFINITY, 0);
    expect(coverage.coveredAt()).toBe(Number.NEGATIVE_INFINITY);
  });
});
