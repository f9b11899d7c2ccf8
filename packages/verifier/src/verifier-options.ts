import type { Transport } from "@connectrpc/connect";
import type { KeyEventBus } from "@latchkey/events";
import type { KeyFormats } from "@latchkey/token";
import type { Context } from "@opentelemetry/api";
import type { Registry } from "prom-client";
import type { GrpcJsVerifyClientOptions } from "./grpc-js-verify-client.js";
import type { VerifyClient } from "./verify-client.js";

/**
 * Options of {@link createVerifier}. Exactly one of `tokenService`, `transport`
 * and `client` is required; everything else has a default.
 *
 * @example
 * ```ts
 * const options: VerifierOptions = {
 *   tokenService: "http://token-service:8082",
 *   events: createNatsKeyEventBus({ servers: "nats://nats:4222" }),
 *   maxStaleMs: 2_000,
 *   serveStaleOnErrorMs: 0,
 * };
 * ```
 */
export interface VerifierOptions {
  /**
   * The token-service's native gRPC address, e.g. `http://token-service:8082`
   * (`https://` for TLS): Verify goes over @grpc/grpc-js, the fast path.
   */
  readonly tokenService?: string;
  /**
   * Options of the grpc-js client made for `tokenService`: `tls.rootCerts`
   * (the CA that signed the token-service's certificate, for an `https://`
   * address), channel options. Ignored with `transport` or `client`.
   */
  readonly grpc?: Omit<GrpcJsVerifyClientOptions, "address">;
  /** A Connect transport (`createGrpcTransport`, `createConnectTransport`, `createRouterTransport`). */
  readonly transport?: Transport;
  /** Any {@link VerifyClient}. The verifier does not close a client it was given. */
  readonly client?: VerifyClient;
  /** Key events to evict on. Without a bus, cached VALID answers live only `maxStaleMs`. */
  readonly events?: KeyEventBus;
  /** Only tokens with this prefix are well-formed (default: any prefix). Ignored with `formats`. */
  readonly prefix?: string;
  /**
   * The key formats the deployment accepts (`createKeyFormats` from `@latchkey/token`, the same list
   * as the token-service's `keyFormats`); a token matching none is MALFORMED with no RPC. Default:
   * latchkey-format keys of `prefix`. Built without signing keys (the default, and the sidecar's),
   * a `signed` key's shape and claims are checked here (only its shape for a token of a format's
   * `legacyKid`, whose claims are another system's) and its signature by the token-service,
   * before any lookup; built with them, forgeries stop here too, but this process then holds a
   * secret that can sign keys (see docs/architecture.md, "Signed keys").
   */
  readonly formats?: KeyFormats;
  /** Most cached answers (default 10,000). */
  readonly maxEntries?: number;
  /** Most (approximate) bytes of cached answers (default 32 MiB). */
  readonly maxBytes?: number;
  /** Lifetime of VALID, REVOKED and EXPIRED answers, clamped to the key's expiry (default 60 s). */
  readonly ttlMs?: number;
  /** Lifetime of NOT_FOUND, DISABLED and (service-side) MALFORMED answers (default 5 s). */
  readonly negativeTtlMs?: number;
  /**
   * Bounded staleness (default 2,000 ms): a cached VALID answer older than this
   * is re-verified unless the proof of currency (an outbox currency answer from
   * the token-service, applied) is younger than this: every key change
   * committed more than `maxStaleMs` ago is then in the cache. Verify asks the
   * token-service for an answer no staler than half of it (`max_staleness_ms`)
   * and counts the answer that much older, so without a bus a VALID answer
   * lives `maxStaleMs / 2`.
   */
  readonly maxStaleMs?: number;
  /**
   * When the token-service cannot be reached, answer from a cached entry up to
   * this long past its lifetime, marked `stale: true` (default 0: off, the
   * caller gets UNAVAILABLE and fails closed). Never past the key's expiry.
   * It is an availability trade-off: "its lifetime" is the TTL (`ttlMs`), so
   * when the token-service and the event feed are both down, a key revoked
   * meanwhile may be served for up to `ttlMs + serveStaleOnErrorMs`, not
   * `maxStaleMs`; every such answer says `stale: true`.
   */
  readonly serveStaleOnErrorMs?: number;
  /** Deadline of each Verify RPC (default 2,000 ms). */
  readonly timeoutMs?: number;
  /** Acks of applied events are batched for at most this long (default 2 ms). */
  readonly ackBatchMs?: number;
  /** Heartbeat and outbox currency request interval (default 1,000 ms); keep it well below `maxStaleMs`. */
  readonly heartbeatIntervalMs?: number;
  /** While the token-service is unreachable, probe it this often to notice its return (default 1,000 ms). */
  readonly healthProbeIntervalMs?: number;
  /**
   * Usage batches are published this often (default 1,000 ms): one report per
   * interval (on `events`), never one message per request. Without `events`
   * no usage is counted.
   */
  readonly usageFlushMs?: number;
  /**
   * Most usage batches kept while NATS cannot take them (default 600: ten
   * minutes at the default interval); beyond it the oldest is dropped and
   * counted in `latchkey_verifier_usage_dropped_batches_total`.
   */
  readonly usageBacklogMax?: number;
  /**
   * Who counts usage (default `"verify"`): the verifier counts each answer of
   * `verify`/`verifyCached` that names a key; `"caller"`: it counts nothing and
   * the caller calls `verifier.usage.record` once per request (the sidecar,
   * which knows the final outcome).
   */
  readonly usageCounting?: "verify" | "caller";
  /** Sent with heartbeats (service or pod name). */
  readonly label?: string;
  /** Registry for the `latchkey_verifier_*` metrics (default: a new one, see {@link Verifier.metrics}). */
  readonly registry?: Registry;
  /** Told about failures that do not surface as outcomes (event handling, subscription retries). */
  readonly onError?: (error: unknown) => void;
}

/**
 * Options of {@link Verifier.verify}.
 *
 * @example
 * ```ts
 * await verifier.verify(token, { requiredScopes: ["chats:write"], signal: request.signal });
 * ```
 */
export interface VerifyOptions {
  /** Scopes the key must hold; `read` is implied by `write`, `write` by `admin`. */
  readonly requiredScopes?: readonly string[];
  /** Gives up waiting (UNAVAILABLE) when aborted; an RPC shared with other callers goes on. */
  readonly signal?: AbortSignal;
  /**
   * The OpenTelemetry context whose span is the parent of the Verify RPC's
   * client span on a miss (default: the active context). Only read when an
   * OpenTelemetry SDK is registered; a cache hit makes no span.
   */
  readonly traceContext?: Context;
}
