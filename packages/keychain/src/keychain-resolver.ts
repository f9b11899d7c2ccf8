import { createHash } from "node:crypto";
import { createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { KeyEventBus, KeyEventSubscription } from "@latchkey/events";
import { KeychainService, WithheldReason } from "@latchkey/proto";
import { LRUCache } from "lru-cache";
import { KeychainError, keychainErrorFrom } from "./keychain-error.js";
import type { PackageIdentity } from "./package-identity.js";
import type { ResolvedSecrets, ResolveOutcome } from "./resolved-secrets.js";

/** The longest a resolved answer may be reused: secrets are plaintext in memory while cached. */
export const MAX_CACHE_TTL_MS = 60_000;
const DEFAULT_CACHE_TTL_MS = 5_000;
const DEFAULT_MAX_ENTRIES = 1_000;
const DEFAULT_TIMEOUT_MS = 5_000;
const MAX_RETRY_MS = 5_000;

/** Options of {@link createKeychainResolver}. */
export interface KeychainResolverOptions {
  /**
   * The token-service's gRPC URL (`http://token-service:8082`; `https://` with TLS). Ignored when
   * `transport` is given.
   */
  readonly tokenService?: string;
  /** A Connect transport of your own (TLS options, interceptors, or an in-memory router in tests). */
  readonly transport?: Transport;
  /**
   * Key events (`createNatsKeyEventBus`, or the in-process bus): a keychain's cached secrets are
   * dropped on any event for its secret (REVOKED, KEYCHAIN_CHANGED, …), everything is dropped after
   * a gap, and nothing is served from the cache while the subscription is down. Without it, a
   * cached answer lives `cacheTtlMs` whatever happens.
   */
  readonly events?: KeyEventBus;
  /** How long a resolved answer is reused, in ms: 0 (never) to 60,000; default 5,000. */
  readonly cacheTtlMs?: number;
  /** How many (keychain secret, package version) answers are kept at most; default 1,000. */
  readonly cacheMaxEntries?: number;
  /** Deadline of one ResolveSecrets call, in ms; default 5,000. */
  readonly timeoutMs?: number;
  /** Where subscription failures are reported (default: nowhere). */
  readonly onError?: (error: unknown) => void;
}

/** Counters of a resolver, for metrics and tests. */
export interface KeychainResolverStats {
  readonly entries: number;
  readonly hits: number;
  readonly misses: number;
  /** Entries dropped because of a key event (revocation, a change of secrets or grants) or a gap. */
  readonly dropped: number;
  /** Whether cached answers may be served now (events connected, or none configured). */
  readonly cacheLive: boolean;
  /** The stream sequence of the last key event applied (0 before the first, or without events). */
  readonly appliedSequence: number;
}

/** Resolves a keychain's secrets for a package, with a short bounded cache. */
export interface KeychainResolver {
  /**
   * The secrets the keychain whose secret is `secret` releases to `pkg`: from the cache when a
   * fresh answer is there, else one ResolveSecrets call (concurrent callers for the same keychain
   * and package share it). Rejects with a {@link KeychainError}.
   */
  resolve(secret: string, pkg: PackageIdentity, options?: { signal?: AbortSignal }): Promise<ResolveOutcome>;
  stats(): KeychainResolverStats;
  /** Stops the event subscription and forgets every cached secret. */
  close(): Promise<void>;
}

interface InFlight {
  readonly hash: string;
  readonly promise: Promise<ResolvedSecrets>;
  /** Set when an event for its keychain arrived while it was out: its answer is not cached nor joined. */
  stale: boolean;
}

/**
 * Creates the resolver a package runtime keeps for its lifetime (one per process): it asks the
 * token-service's ResolveSecrets with the keychain secret as the Bearer credential and the
 * package's name, version and digest, and caches the answer per (keychain secret, package
 * version) for a short, bounded time. Secrets are held in memory only, never logged.
 *
 * @example
 * ```ts
 * const resolver = createKeychainResolver({ tokenService: "http://token-service:8082", events: bus });
 * const context = await createKeychainContext({ resolver, secret, package: { name, version, sha256 } });
 * ```
 */
export function createKeychainResolver(options: KeychainResolverOptions): KeychainResolver {
  const ttlMs = options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
  if (!Number.isInteger(ttlMs) || ttlMs < 0 || ttlMs > MAX_CACHE_TTL_MS) {
    throw new RangeError(`cacheTtlMs must be a whole number from 0 to ${MAX_CACHE_TTL_MS}`);
  }
  const maxEntries = options.cacheMaxEntries ?? DEFAULT_MAX_ENTRIES;
  if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > 1_000_000) {
    throw new RangeError("cacheMaxEntries must be a whole number from 1 to 1,000,000");
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const transport = options.transport ?? transportFor(options.tokenService);
  const client = createClient(KeychainService, transport);

  // Cache keys by keychain secret hash, so an event (which carries the hash) finds them.
  const byHash = new Map<string, Set<string>>();
  const cache = new LRUCache<string, { readonly resolved: ResolvedSecrets; readonly hash: string }>({
    max: maxEntries,
    ...(ttlMs > 0 ? { ttl: ttlMs, ttlAutopurge: false } : {}),
    dispose: (value, key) => {
      const keys = byHash.get(value.hash);
      keys?.delete(key);
      if (keys?.size === 0) byHash.delete(value.hash);
    },
  });
  const inflight = new Map<string, InFlight>();
  let hits = 0;
  let misses = 0;
  let dropped = 0;
  let appliedSequence = 0;
  let closed = false;
  // Without events the cache is trusted for its TTL; with them only while subscribed.
  let live = options.events === undefined;
  let subscription: KeyEventSubscription | undefined;

  function drop(hash: string): void {
    for (const key of [...(byHash.get(hash) ?? [])]) {
      if (cache.delete(key)) dropped++;
    }
    // Calls out for this keychain may carry what the event just changed.
    for (const flight of inflight.values()) if (flight.hash === hash) flight.stale = true;
  }

  function dropAll(): void {
    dropped += cache.size;
    cache.clear();
    for (const flight of inflight.values()) flight.stale = true;
  }

  async function follow(bus: KeyEventBus): Promise<void> {
    for (let attempt = 0; !closed; attempt++) {
      try {
        const opened = await bus.subscribe({
          onEvent: ({ event, sequence }) => {
            drop(Buffer.from(event.tokenHash).toString("hex"));
            appliedSequence = sequence;
          },
          onGap: () => dropAll(),
          onConnectionChange: (connected) => {
            if (!connected) dropAll();
            live = connected && !closed;
          },
        });
        if (closed) await opened.close();
        else subscription = opened;
        return;
      } catch (error) {
        options.onError?.(error);
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(MAX_RETRY_MS, 100 * 2 ** attempt)).unref(),
        );
      }
    }
  }
  const following = options.events === undefined ? Promise.resolve() : follow(options.events);

  async function ask(
    secret: string,
    pkg: PackageIdentity,
    signal: AbortSignal | undefined,
  ): Promise<ResolvedSecrets> {
    try {
      const response = await client.resolveSecrets(
        { packageName: pkg.name, version: pkg.version, sha256: pkg.sha256 },
        { headers: { authorization: `Bearer ${secret}` }, timeoutMs, ...(signal ? { signal } : {}) },
      );
      return Object.freeze({
        keychainId: response.keychainId,
        secrets: Object.freeze({ ...response.secrets }),
        withheld: Object.freeze(
          response.withheld.map((each) =>
            Object.freeze({
              name: each.name,
              reason: (WithheldReason[each.reason] ?? "unspecified").toLowerCase(),
            }),
          ),
        ),
      });
    } catch (error) {
      throw keychainErrorFrom(error);
    }
  }

  return {
    async resolve(secret, pkg, callOptions = {}) {
      if (closed) throw new KeychainError("unavailable", "the keychain resolver is closed");
      if (typeof secret !== "string" || secret === "") {
        throw new KeychainError("unauthenticated", "no keychain secret was presented");
      }
      const hash = createHash("sha256").update(secret).digest("hex");
      const key = `${hash}\0${pkg.name}\0${pkg.version}\0${pkg.sha256.toLowerCase()}`;
      if (live && ttlMs > 0) {
        const cached = cache.get(key);
        if (cached !== undefined) {
          hits++;
          return { resolved: cached.resolved, cached: true };
        }
      }
      misses++;
      const shared = inflight.get(key);
      if (shared !== undefined && !shared.stale) return { resolved: await shared.promise, cached: false };
      const flight: InFlight = { hash, promise: ask(secret, pkg, callOptions.signal), stale: false };
      inflight.set(key, flight);
      try {
        const resolved = await flight.promise;
        // Cached only when no event for this keychain arrived while the call was out, and events flow.
        if (live && ttlMs > 0 && !closed && !flight.stale) {
          cache.set(key, { resolved, hash });
          const keys = byHash.get(hash) ?? new Set<string>();
          keys.add(key);
          byHash.set(hash, keys);
        }
        return { resolved, cached: false };
      } finally {
        if (inflight.get(key) === flight) inflight.delete(key);
      }
    },

    stats() {
      return { entries: cache.size, hits, misses, dropped, cacheLive: live && ttlMs > 0, appliedSequence };
    },

    async close() {
      closed = true;
      live = false;
      cache.clear();
      await following;
      await subscription?.close();
    },
  };
}

function transportFor(tokenService: string | undefined): Transport {
  if (tokenService === undefined) {
    throw new RangeError("createKeychainResolver needs tokenService (a gRPC URL) or transport");
  }
  const url = new URL(tokenService);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new RangeError("tokenService must be an http:// or https:// URL");
  }
  return createGrpcTransport({ baseUrl: url.origin });
}
