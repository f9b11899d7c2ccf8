import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { KeySchema, type VerifyResponse, VerifyResponseSchema, VerifyResult } from "@latchkey/proto";
import { encodeBase62Fixed, generateToken } from "@latchkey/token";
import { createVerifier } from "@latchkey/verifier";

// npm run bench:cache-memory [-- --keys 100000 --scopes 2]
//
// Heap bytes per cached key: a verifier (the sidecar's, with its cache, its key-id and expiry indexes
// and its expiry watch) fills its cache with `--keys` distinct valid keys, each answered by a stand-in
// Verify client with a response decoded from the wire as the real client would; the heap is measured
// after full GCs (--expose-gc) before and after, and the delta divided by the keys. The tokens
// themselves exist before the first measurement and are not counted (a verifier keeps only their
// hashes). Also prints the cache's own estimate (`latchkey_verifier_cache_bytes`), which its byte bound
// uses. Goal: ≤ 300 B per key.

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer`);
  return value;
}

const exposedGc = (globalThis as { gc?: () => void }).gc;
if (exposedGc === undefined) throw new Error("run with node --expose-gc (npm run bench:cache-memory does)");
const gc: () => void = exposedGc;

const keys = flag("keys", 100_000);
const scopeCount = flag("scopes", 2);
const scopes = ["read", "write", "admin", "billing", "reports"].slice(0, scopeCount);
const tokens = Array.from({ length: keys }, () => generateToken({ prefix: "lk", environment: "live" }));
const ids = new Map(tokens.map((token, index) => [token, index]));

function responseFor(index: number): VerifyResponse {
  const wire = toBinary(
    VerifyResponseSchema,
    create(VerifyResponseSchema, {
      result: VerifyResult.VALID,
      key: create(KeySchema, {
        id: `key_${encodeBase62Fixed(index, 22)}`,
        teamId: "team_0000000000000000000001",
        name: `service-${index}`,
        scopes,
        environment: "live",
        hint: "lk_live_…abcd",
        enabled: true,
        createdBy: "root",
      }),
    }),
  );
  return fromBinary(VerifyResponseSchema, wire);
}

const verifier = createVerifier({
  client: {
    verify: async (request) => responseFor(ids.get(request.token) ?? 0),
    close() {},
  },
  maxEntries: keys,
  maxBytes: Number.MAX_SAFE_INTEGER,
});

function heapUsed(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

// Warm the code paths on a throw-away batch, so that compiled code is not counted as cache memory.
for (let i = 0; i < Math.min(1_000, keys); i++) await verifier.verify(tokens[i] as string);
const before = heapUsed();
const estimateBefore = verifier.status().cacheBytes;
const warmed = verifier.status().cacheEntries;
for (let i = warmed; i < keys; i++) {
  const outcome = await verifier.verify(tokens[i] as string);
  if (!outcome.ok) throw new Error(`key ${i}: ${outcome.code}`);
}
const after = heapUsed();
const status = verifier.status();
const added = status.cacheEntries - warmed;
const perKey = (after - before) / added;
const estimated = (status.cacheBytes - estimateBefore) / added;
console.log(
  `${added} keys added (${status.cacheEntries} cached, ${scopeCount} scopes each): heap +${((after - before) / 1024 / 1024).toFixed(1)} MiB`,
);
console.log("| measure | bytes per key | goal |");
console.log("|---|---|---|");
console.log(`| heap delta / keys | ${perKey.toFixed(0)} | ≤ 300 |`);
console.log(`| the cache's own estimate (its byte bound) | ${estimated.toFixed(0)} | – |`);
console.log(
  `cache-memory keys=${added} bytes_per_key=${perKey.toFixed(0)} estimate_per_key=${estimated.toFixed(0)}`,
);
await verifier.close();
tokens.length = 0;
