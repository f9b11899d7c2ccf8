import type { UsageReport } from "@latchkey/proto";

/** A usage report as the token-service receives it. */
export interface UsageDelivery {
  /** The report's message id (`<verifier_id>-<sequence>`): the consumer's de-duplication key. */
  readonly messageId: string;
  readonly report: UsageReport;
  /** How many times the bus has delivered it (1 the first time). */
  readonly deliveryCount: number;
}

/**
 * Carries verifiers' usage reports to the token-service: at least once, with a
 * message id per batch so re-publication is de-duplicated by the bus and a
 * redelivery by the consumer. Part of {@link KeyEventBus}.
 */
export interface UsageReportTransport {
  /**
   * Publishes one batch. Resolves once the bus has durably accepted it
   * (`duplicate` when it already held that id); rejects when it cannot, and
   * the caller keeps the batch to try again with the same id.
   */
  publishUsage(report: UsageReport, messageId: string): Promise<{ duplicate: boolean }>;
  /**
   * Consumes reports through the one shared durable consumer: replicas that
   * call it share the work. A report is acknowledged once `handler` resolves
   * and delivered again (later, possibly to another replica) when it rejects
   * or the process dies first.
   */
  consumeUsage(handler: (delivery: UsageDelivery) => Promise<void>): Promise<{ close(): Promise<void> }>;
}
