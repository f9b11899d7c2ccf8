import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { NoRespondersError, nanos } from "@nats-io/transport-node";
import { KEY_EVENTS_STREAM, KEY_EVENTS_SUBJECTS } from "./subjects.js";

/** Retention of the key event stream; every limit has a default. */
export interface KeyEventStreamLimits {
  /** Events older than this are dropped (default 24 h; keep it above every cache TTL). */
  readonly maxAgeMs?: number;
  /** The stream keeps at most this many bytes (default 1 GiB). */
  readonly maxBytes?: number;
  /** The stream keeps at most this many events (default unlimited). */
  readonly maxMessages?: number;
  /** Replicas in a NATS cluster (default 1). */
  readonly replicas?: number;
}

/** Duplicate window for `Nats-Msg-Id`: a publisher retrying the same outbox row within it is de-duplicated. */
const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
const GIB = 1024 * 1024 * 1024;

/**
 * Creates the stream `LATCHKEY_KEY_EVENTS` or updates its limits: subjects
 * `latchkey.keys.>`, limits retention (age, bytes, count, oldest dropped
 * first), a 2-minute duplicate window, file storage.
 *
 * @example
 * ```ts
 * const { created } = await ensureKeyEventStream(await nc.jetstreamManager(), { maxAgeMs: 86_400_000 });
 * ```
 */
export async function ensureKeyEventStream(
  jsm: JetStreamManager,
  limits: KeyEventStreamLimits = {},
): Promise<{ created: boolean }> {
  const maxAgeMs = limits.maxAgeMs ?? DAY_MS;
  const config = {
    subjects: [KEY_EVENTS_SUBJECTS],
    max_age: nanos(maxAgeMs),
    max_bytes: limits.maxBytes ?? GIB,
    max_msgs: limits.maxMessages ?? -1,
    duplicate_window: nanos(Math.min(DUPLICATE_WINDOW_MS, maxAgeMs)),
    num_replicas: limits.replicas ?? 1,
    discard: DiscardPolicy.Old,
  };
  return ensureFileStream(jsm, KEY_EVENTS_STREAM, RetentionPolicy.Limits, config);
}

/**
 * Creates a file-backed stream with `retention` and `config`, or updates the
 * limits of the one that exists (retention cannot change on a live stream).
 *
 * @example
 * ```ts
 * await ensureFileStream(jsm, "LATCHKEY_USAGE", RetentionPolicy.Workqueue, { subjects: ["latchkey.usage.>"] });
 * ```
 */
export async function ensureFileStream(
  jsm: JetStreamManager,
  name: string,
  retention: RetentionPolicy,
  config: Partial<StreamConfig>,
): Promise<{ created: boolean }> {
  try {
    await jsm.streams.info(name);
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
    await jsm.streams.add({ ...config, name, retention, storage: StorageType.File });
    return { created: true };
  }
  await jsm.streams.update(name, config);
  return { created: false };
}

/**
 * Whether a JetStream publish failed because no stream took the message:
 * nothing listens on the subject (no responders, which the client reports as
 * "jetstream is not enabled" with the no-responders error as its cause) or the
 * stream is gone.
 *
 * @example
 * ```ts
 * if (isNoStream(error)) await ensureKeyEventStream(jsm);
 * ```
 */
export function isNoStream(error: unknown): boolean {
  if (isStreamNotFound(error)) return true;
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof NoRespondersError) return true;
  }
  return false;
}

/**
 * Whether a JetStream API call failed because the stream does not exist.
 *
 * @example
 * ```ts
 * await jsm.streams.info(KEY_EVENTS_STREAM).catch((e) => (isStreamNotFound(e) ? undefined : Promise.reject(e)));
 * ```
 */
export function isStreamNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound;
}
