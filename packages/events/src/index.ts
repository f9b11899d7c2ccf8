/** Key events: subject names, the bus interface, and its implementations. */
export type {
  KeyEventBus,
  KeyEventDelivery,
  KeyEventSubscriber,
  KeyEventSubscription,
  VerifierMessage,
} from "./key-event-bus.js";
export { createMemoryKeyEventBus, type MemoryKeyEventBusOptions } from "./memory-key-event-bus.js";
export {
  createNatsKeyEventBus,
  type KeyEventBusLogger,
  type NatsKeyEventBus,
  type NatsKeyEventBusOptions,
  type NatsTlsFiles,
  natsConnectionOptions,
} from "./nats-key-event-bus.js";
export { ensureUsageStream, type UsageStreamLimits, usageMessageId } from "./nats-usage-stream.js";
export { createOutboxCoverage, type OutboxCoverage } from "./outbox-coverage.js";
export type { OutboxCurrencyQuestion, OutboxCurrencyTransport } from "./outbox-currency-transport.js";
export {
  KEY_EVENTS_STREAM,
  KEY_EVENTS_SUBJECT_PREFIX,
  KEY_EVENTS_SUBJECTS,
  keyEventName,
  keyEventSubject,
  TOKEN_SERVICE_INBOX_PREFIX,
  USAGE_CONSUMER,
  USAGE_STREAM,
  USAGE_SUBJECT_PREFIX,
  USAGE_SUBJECTS,
  usageSubject,
  VERIFIER_ACK_SUBJECT_PREFIX,
  VERIFIER_CURRENCY_SUBJECT_PREFIX,
  VERIFIER_HEARTBEAT_SUBJECT_PREFIX,
  verifierSubject,
} from "./subjects.js";
export type { UsageDelivery, UsageReportTransport } from "./usage-report-transport.js";
