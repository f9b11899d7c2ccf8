import { hashTokenBase64 } from "@latchkey/token";
import { LRUCache } from "lru-cache";
import { type CacheEntry, entrySize } from "./cache-entry.js";

/** Options of {@link createVerifierCache}. */
export interface VerifierCacheOptions {
  /** Most entries held. */
  readonly maxEntries: number;
  /** Most (approximate) bytes held. */
  readonly maxBytes: number;
  /** Called for every entry that leaves the cache because of the bounds. */
  readonly onBoundEviction?: (entry: CacheEntry) => void;
}

/**
 * The verifier's cache: an LRU bounded by entries and bytes, keyed by the
 * base64 SHA-256 of the token (never the token), plus two indexes kept in step
 * with it: key id → hashes (key events name the key) and hash → key expiry
 * (for the expiry timer).
 */
export interface VerifierCache {
  /** The entry for a hash, marking it recently used. */
  get(hash: string): CacheEntry | undefined;
  /** Adds or replaces an entry. */
  set(entry: CacheEntry): void;
  /** Removes one entry; returns it. */
  delete(hash: string): CacheEntry | undefined;
  /** Removes every entry of a key; returns how many. */
  deleteKey(keyId: string): number;
  /** Removes everything; returns how many. */
  clear(): number;
  /** Hashes of VALID entries whose key expires, with the expiry time. */
  readonly expiring: ReadonlyMap<string, number>;
  readonly size: number;
  readonly bytes: number;
}

/**
 * The cache key of a token: base64 SHA-256 of its UTF-8 bytes, the same digest
 * as `hashToken` from `@latchkey/token` and as `KeyEvent.token_hash`.
 *
 * @example
 * ```ts
 * tokenCacheKey(token) === hashToken(token).toString("base64"); // true
 * ```
 */
export function tokenCacheKey(token: string): string {
  return hashTokenBase64(token);
}

/**
 * The cache key of a token hash carried by a key event.
 *
 * @example
 * ```ts
 * cache.delete(hashCacheKey(event.tokenHash));
 * ```
 */
export function hashCacheKey(tokenHash: Uint8Array): string {
  return Buffer.from(tokenHash.buffer, tokenHash.byteOffset, tokenHash.byteLength).toString("base64");
}

/**
 * Creates the verifier's cache.
 *
 * @example
 * ```ts
 * const cache = createVerifierCache({ maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 });
 * cache.set(entry);
 * cache.deleteKey("key_…");
 * ```
 */
export function createVerifierCache(options: VerifierCacheOptions): VerifierCache {
  // Key id → its one cached hash, or a Set of them when a key has several tokens cached (rare: a Set
  // per key cost more memory than the entry itself).
  const byKeyId = new Map<string, string | Set<string>>();
  const expiring = new Map<string, number>();

  function unindex(entry: CacheEntry): void {
    const keyId = entry.key?.id;
    if (keyId !== undefined) {
      const hashes = byKeyId.get(keyId);
      if (hashes === entry.hash) byKeyId.delete(keyId);
      else if (typeof hashes === "object") {
        hashes.delete(entry.hash);
        if (hashes.size === 0) byKeyId.delete(keyId);
      }
    }
    expiring.delete(entry.hash);
  }

  const lru = new LRUCache<string, CacheEntry>({
    max: options.maxEntries,
    maxSize: options.maxBytes,
    sizeCalculation: entrySize,
    dispose: (entry, _hash, reason) => {
      unindex(entry);
      if (reason === "evict") options.onBoundEviction?.(entry);
    },
  });

  return {
    get(hash) {
      return lru.get(hash);
    },
    set(entry) {
      lru.set(entry.hash, entry);
      // An entry larger than the byte bound is not stored: do not index it.
      if (lru.peek(entry.hash) !== entry) return;
      const keyId = entry.key?.id;
      if (keyId !== undefined) {
        const hashes = byKeyId.get(keyId);
        if (hashes === undefined || hashes === entry.hash) byKeyId.set(keyId, entry.hash);
        else if (typeof hashes === "string") byKeyId.set(keyId, new Set([hashes, entry.hash]));
        else hashes.add(entry.hash);
      }
      if (entry.code === "VALID" && Number.isFinite(entry.keyExpiresAt))
        expiring.set(entry.hash, entry.keyExpiresAt);
    },
    delete(hash) {
      const entry = lru.peek(hash);
      if (entry !== undefined) lru.delete(hash);
      expiring.delete(hash);
      return entry;
    },
    deleteKey(keyId) {
      const hashes = byKeyId.get(keyId);
      if (hashes === undefined) return 0;
      let removed = 0;
      for (const hash of typeof hashes === "string" ? [hashes] : [...hashes])
        if (lru.delete(hash)) removed += 1;
      byKeyId.delete(keyId);
      return removed;
    },
    clear() {
      const removed = lru.size;
      lru.clear();
      byKeyId.clear();
      expiring.clear();
      return removed;
    },
    expiring,
    get size() {
      return lru.size;
    },
    get bytes() {
      return lru.calculatedSize;
    },
  };
}
