import { KeyEventType } from "@latchkey/proto";

/** The JetStream stream that carries every key event. */
export const KEY_EVENTS_STREAM = "LATCHKEY_KEY_EVENTS";
/** Subject prefix of key events: `latchkey.keys.<team_id>.<event>`. */
export const KEY_EVENTS_SUBJECT_PREFIX = "latchkey.keys";
/** Wildcard covering every key event, used as the stream's subject filter. */
export const KEY_EVENTS_SUBJECTS = `${KEY_EVENTS_SUBJECT_PREFIX}.>`;
/** Core NATS subject prefix of verifier acknowledgements: `latchkey.verifiers.ack.<verifier_id>`. */
export const VERIFIER_ACK_SUBJECT_PREFIX = "latchkey.verifiers.ack";
/** Core NATS subject prefix of verifier heartbeats: `latchkey.verifiers.heartbeat.<verifier_id>`. */
export const VERIFIER_HEARTBEAT_SUBJECT_PREFIX = "latchkey.verifiers.heartbeat";
/**
 * Core NATS subject prefix of verifiers' outbox currency requests:
 * `latchkey.verifiers.currency.<verifier_id>`, answered on the request's reply subject.
 */
export const VERIFIER_CURRENCY_SUBJECT_PREFIX = "latchkey.verifiers.currency";
/**
 * Reply-subject prefix of the token-service's NATS connection. The shipped NATS
 * permissions (deploy/k8s/base/nats/auth.conf) let only the token-service's user
 * subscribe to it; verifiers keep the default `_INBOX`.
 */
export const TOKEN_SERVICE_INBOX_PREFIX = "_INBOX_latchkey_token_service";

const EVENT_NAMES: Record<KeyEventType, string> = {
  [KeyEventType.UNSPECIFIED]: "unspecified",
  [KeyEventType.REVOKED]: "revoked",
  [KeyEventType.DISABLED]: "disabled",
  [KeyEventType.ENABLED]: "enabled",
  [KeyEventType.SCOPES_CHANGED]: "scopes_changed",
  [KeyEventType.METADATA_CHANGED]: "metadata_changed",
  [KeyEventType.ROTATED]: "rotated",
  [KeyEventType.EXPIRED]: "expired",
  [KeyEventType.USAGE_LIMIT_CHANGED]: "usage_limit_changed",
  [KeyEventType.IMPORTED]: "imported",
  [KeyEventType.KEYCHAIN_CHANGED]: "keychain_changed",
};

const SUBJECT_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The lower-case event name used in subjects (`revoked`, `scopes_changed`, …).
 *
 * @example
 * ```ts
 * keyEventName(KeyEventType.REVOKED); // "revoked"
 * ```
 */
export function keyEventName(type: KeyEventType): string {
  return EVENT_NAMES[type] ?? "unspecified";
}

/**
 * The subject a key event is published on.
 *
 * @example
 * ```ts
 * keyEventSubject("team_abc", KeyEventType.REVOKED); // "latchkey.keys.team_abc.revoked"
 * ```
 * @throws RangeError when the team id could inject subject tokens (dots, wildcards, spaces).
 */
export function keyEventSubject(teamId: string, type: KeyEventType): string {
  if (!SUBJECT_TOKEN.test(teamId)) throw new RangeError("team id is not a safe subject token");
  return `${KEY_EVENTS_SUBJECT_PREFIX}.${teamId}.${keyEventName(type)}`;
}

/**
 * The subject of a verifier's acks or heartbeats.
 *
 * @example
 * ```ts
 * verifierSubject(VERIFIER_ACK_SUBJECT_PREFIX, "v_1"); // "latchkey.verifiers.ack.v_1"
 * ```
 */
export function verifierSubject(prefix: string, verifierId: string): string {
  if (!SUBJECT_TOKEN.test(verifierId)) throw new RangeError("verifier id is not a safe subject token");
  return `${prefix}.${verifierId}`;
}

/** The JetStream stream of usage reports (work queue: a report leaves once the token-service acks it). */
export const USAGE_STREAM = "LATCHKEY_USAGE";
/** Subject prefix of usage reports: `latchkey.usage.<verifier_id>`. */
export const USAGE_SUBJECT_PREFIX = "latchkey.usage";
/** Wildcard covering every usage report, the stream's subject filter. */
export const USAGE_SUBJECTS = `${USAGE_SUBJECT_PREFIX}.>`;
/** The durable consumer every token-service replica reads usage reports through (they share its work). */
export const USAGE_CONSUMER = "latchkey-token-service-usage";

/**
 * The subject a verifier's usage reports are published on.
 *
 * @example
 * ```ts
 * usageSubject("v_1"); // "latchkey.usage.v_1"
 * ```
 * @throws RangeError when the verifier id could inject subject tokens.
 */
export function usageSubject(verifierId: string): string {
  return verifierSubject(USAGE_SUBJECT_PREFIX, verifierId);
}
