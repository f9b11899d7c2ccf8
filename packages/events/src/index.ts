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
export {
  KEY_EVENTS_STREAM,
  KEY_EVENTS_SUBJECT_PREFIX,
  KEY_EVENTS_SUBJECTS,
  keyEventName,
  keyEventSubject,
  TOKEN_SERVICE_INBOX_PREFIX,
  VERIFIER_ACK_SUBJECT_PREFIX,
  VERIFIER_HEARTBEAT_SUBJECT_PREFIX,
  verifierSubject,
} from "./subjects.js";
