import type { Key, VerifyResponse } from "@latchkey/proto";
import { LRUCache } from "lru-cache";
import type { ApiKeyRow } from "../db/tables.js";

/** What the cache holds per token hash: the row, its API shape and its VALID answer, or "no such key". */
export type CachedKey = {
  readonly row: ApiKeyRow;
  readonly key: Key;
  readonly valid: VerifyResponse;
  /** The key's scopes with those they imply, for scope checks without a per-call set. */
  readonly scopes: ReadonlySet<string>;
} | null;

/**
 * The cache key of a token hash: its hex. pg gives a bytea as a Buffer and
 * PGlite as a Uint8Array; either is read in place, not copied.
 */
export function tokenHashHex(hash: Uint8Array): string {
  return (Buffer.isBuffer(hash) ? hash : Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength)).toString(
    "hex",
  );
}

/** Options of {@link KeyRowCache}. */
export interface KeyRowCacheOptions {
  readonly maxEntries: number;
  readonly ttlMs: number;
  /** How long "no such key" is remembered (kept short: a key may be issued right after). */
  readonly negativeTtlMs?: number;
}

/**
 * The token-service's own cache of key rows by token hash, so a hot Verify
 * does not touch PostgreSQL. Every key event (local or from another replica)
 * evicts, and an epoch counter stops a read that raced with an event from
 * caching the old row. It also knows the stream sequence of the last key event
 * it applied, so a caller that has applied a later event (a verifier that has
 * just dropped a revoked key) is not answered from it but from the database.
 */
export class KeyRowCache {
  readonly #cache: LRUCache<string, { value: CachedKey }> | undefined;
  readonly #byKeyId = new Map<string, string>();
  readonly #negativeTtlMs: number;
  #epoch = 0;
  /** Every entry reflects all key events up to this stream sequence. */
  #appliedSequence = 0n;

  constructor(options: KeyRowCacheOptions) {
    this.#negativeTtlMs = options.negativeTtlMs ?? Math.min(options.ttlMs, 2_000);
    if (options.maxEntries > 0 && options.ttlMs > 0) {
      this.#cache = new LRUCache({
        max: options.maxEntries,
        ttl: options.ttlMs,
        ttlAutopurge: false,
        dispose: (entry) => {
          if (entry.value) this.#byKeyId.delete(entry.value.row.id);
        },
      });
    }
  }

  /** The current epoch; pass it back to {@link KeyRowCache.set}. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The stream sequence of the last key event applied (or skipped past by {@link KeyRowCache.clear}). */
  get appliedSequence(): bigint {
    return this.#appliedSequence;
  }

  /**
   * A cached answer, or undefined when the database must be asked: not cached,
   * or the caller has applied key events up to `minSequence` and this cache
   * has not caught up with them yet.
   */
  get(hashHex: string, minSequence: bigint): { value: CachedKey } | undefined {
    // A bigint comparison: no allocation on the hot path.
    if (minSequence > this.#appliedSequence) return undefined;
    return this.#cache?.get(hashHex);
  }

  /** Caches a database answer unless an invalidation happened since `epoch`. */
  set(hashHex: string, value: CachedKey, epoch: number): void {
    if (!this.#cache || epoch !== this.#epoch) return;
    if (value) {
      this.#cache.set(hashHex, { value });
      this.#byKeyId.set(value.row.id, hashHex);
    } else {
      this.#cache.set(hashHex, { value }, { ttl: this.#negativeTtlMs });
    }
  }

  /** Drops a key, by id and by token hash. */
  invalidate(keyId: string, hashHex?: string): void {
    this.#epoch += 1;
    const byId = this.#byKeyId.get(keyId);
    if (byId) this.#cache?.delete(byId);
    if (hashHex) this.#cache?.delete(hashHex);
  }

  /**
   * Drops a key for the key event at `sequence` in the stream and records that
   * events up to it are applied. Events must come in stream order.
   */
  applyEvent(sequence: number, keyId: string, hashHex?: string): void {
    this.invalidate(keyId, hashHex);
    this.#appliedSequence = BigInt(sequence);
  }

  /**
   * Drops everything (after missing events, or when the feed (re)connects).
   * With `appliedSequence`, the stream position from which events are
   * applied again: an empty cache reflects every event already committed. It
   * may be lower than before (a re-created stream restarts its sequences).
   */
  clear(appliedSequence?: number): void {
    this.#epoch += 1;
    this.#cache?.clear();
    this.#byKeyId.clear();
    if (appliedSequence !== undefined) this.#appliedSequence = BigInt(appliedSequence);
  }
}
