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
 * caching the old row.
 */
export class KeyRowCache {
  readonly #cache: LRUCache<string, { value: CachedKey }> | undefined;
  readonly #byKeyId = new Map<string, string>();
  readonly #negativeTtlMs: number;
  #epoch = 0;

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

  /** A cached answer, or undefined when the database must be asked. */
  get(hashHex: string): { value: CachedKey } | undefined {
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

  /** Drops everything (after missing events). */
  clear(): void {
    this.#epoch += 1;
    this.#cache?.clear();
    this.#byKeyId.clear();
  }
}
