import { describe, expect, it } from "vitest";
import { type Decision, decision } from "../decision.js";
import type { VerifiedKey } from "../key-checker.js";
import { compilePolicy } from "../policy/policy.js";
import { parseRateLimits } from "./load-rate-limits.js";
import { createRateLimiter, type RateLimiterOptions } from "./rate-limiter.js";

const WINDOW_START = 1_800_000_000_000; // a multiple of 10 s and of 1 min
const FILE_DOCUMENT = {
  tiers: {
    connected: [{ name: "minute", limit: 300, window: "1m" }],
    verified: [{ name: "minute", limit: 1, window: "1m" }],
    unverified: [{ name: "five-minutes", limit: 1, window: "5m" }],
  },
  scopes: {
    read: [{ name: "hourly", limit: 1000, window: "1h" }],
    write: [{ name: "hourly", limit: 2000, window: "1h" }],
    admin: [{ name: "hourly", limit: 5000, window: "1h" }],
  },
};
const FILE = parseRateLimits(FILE_DOCUMENT);
const POLICY = compilePolicy({
  rules: [
    { path: "/burst", kind: "key", rateLimit: [{ name: "burst", limit: 3, window: "10s" }] },
    { path: "/proxy/**", kind: "public", rateLimit: { tier: "unverified" } },
    { path: "/open", kind: "public" },
    { path: "/gateway/*", kind: "optional-key", rateLimit: { tier: "unverified" } },
  ],
});

function key(id: string, scopes: string[], metadata: Record<string, string> = {}): VerifiedKey {
  return { id, teamId: "team_1", name: id, scopes, environment: "live", expiresAt: undefined, metadata };
}

function allowed(path: string, verified?: VerifiedKey): Decision {
  const rule = POLICY.match("GET", path);
  return decision({ allow: true, label: verified ? "key" : "public", rule, path, query: "", key: verified });
}

function limiter(clock: { now: number }, more: Partial<RateLimiterOptions> = {}) {
  return createRateLimiter({
    file: FILE,
    policy: POLICY,
    isTrusted: (address) => address === "127.0.0.1",
    maxCounters: 1_000,
    expectedPeers: 1,
    now: () => clock.now,
    ...more,
  });
}

const from = (peer: string, forwardedFor?: string) => ({ peer, scanned: { forwardedFor } });
const header = (decided: Decision, name: string) => {
  const headers = decided.rateLimitHeaders ?? [];
  const index = headers.indexOf(name);
  return index === -1 ? undefined : headers[index + 1];
};
const retryAfter = (decided: Decision) =>
  decided.refusal?.headers.find(([name]) => name === "retry-after")?.[1];

describe("rate limiter", () => {
  it("counts a route's limit per key and answers with computed RateLimit headers, then a 429", () => {
    const clock = { now: WINDOW_START + 2_000 };
    const limits = limiter(clock);
    const reader = key("key_a", ["read"]);
    const first = limits.check(allowed("/burst", reader), from("198.51.100.1"));
    expect(first.allow).toBe(true);
    expect(header(first, "ratelimit-policy")).toBe('"hourly";q=1000;w=3600, "burst";q=3;w=10');
    expect(header(first, "ratelimit")).toBe('"hourly";r=999;t=3598, "burst";r=2;t=8');
    limits.check(allowed("/burst", reader), from("198.51.100.1"));
    expect(limits.check(allowed("/burst", reader), from("198.51.100.1")).allow).toBe(true);
    const refused = limits.check(allowed("/burst", reader), from("198.51.100.1"));
    expect(refused.allow).toBe(false);
    expect(refused.label).toBe("rate_limited");
    expect(refused.refusal?.status).toBe(429);
    // 3 counted at 2 s into the window: the next window's weight on them falls to 2/3 at 10 + 10/3 s.
    expect(retryAfter(refused)).toBe("12");
    expect(header(refused, "ratelimit")).toBe('"hourly";r=997;t=3598, "burst";r=0;t=12');
    expect(refused.refusal?.headers).toContainEqual(["ratelimit", '"hourly";r=997;t=3598, "burst";r=0;t=12']);
    // Another key has its own count.
    expect(limits.check(allowed("/burst", key("key_b", ["read"])), from("x")).allow).toBe(true);
    // The sliding window: the previous window's count weighs less as the new one goes on.
    clock.now = WINDOW_START + 10_000 + 3_000;
    expect(limits.check(allowed("/burst", reader), from("x")).allow).toBe(false);
    clock.now = WINDOW_START + 10_000 + 3_400;
    expect(limits.check(allowed("/burst", reader), from("x")).allow).toBe(true);
  });

  it("takes a key's limits from its tier, else its highest built-in scope, and says once when a tier is unknown", () => {
    const clock = { now: WINDOW_START };
    const unknown: string[] = [];
    const limits = limiter(clock, { onUnknownTier: (tier) => unknown.push(tier) });
    const verified = key("key_v", ["read"], { tier: "verified" });
    expect(header(limits.check(allowed("/other", verified), from("x")), "ratelimit-policy")).toBe(
      '"minute";q=1;w=60',
    );
    expect(limits.check(allowed("/other", verified), from("x")).refusal?.status).toBe(429);
    const admin = key("key_admin", ["read", "write", "admin"]);
    expect(header(limits.check(allowed("/other", admin), from("x")), "ratelimit-policy")).toBe(
      '"hourly";q=5000;w=3600',
    );
    const gold = key("key_gold", ["write"], { tier: "gold" });
    expect(header(limits.check(allowed("/other", gold), from("x")), "ratelimit-policy")).toBe(
      '"hourly";q=2000;w=3600',
    );
    limits.check(allowed("/other", key("key_gold2", ["write"], { tier: "gold" })), from("x"));
    expect(unknown).toEqual(["gold"]);
    // No tier, no built-in scope: nothing to count, the decision as it was.
    const plain = allowed("/other", key("key_chats", ["chats:write"]));
    expect(limits.check(plain, from("x"))).toBe(plain);
  });

  it("gives an unknown tier the `unknownTier` limits when the file names one", () => {
    const file = parseRateLimits({ ...FILE_DOCUMENT, unknownTier: "verified" });
    const limits = limiter({ now: WINDOW_START }, { file });
    const decided = limits.check(allowed("/other", key("key_x", ["admin"], { tier: "nope" })), from("x"));
    expect(header(decided, "ratelimit-policy")).toBe('"minute";q=1;w=60');
  });

  it("counts public routes per client address, believing X-Forwarded-For only from a trusted proxy", () => {
    const limits = limiter({ now: WINDOW_START });
    expect(limits.check(allowed("/proxy/a"), from("198.51.100.7")).allow).toBe(true);
    expect(limits.check(allowed("/proxy/b"), from("198.51.100.7")).allow).toBe(false);
    // An untrusted client cannot pick another address to be counted as.
    expect(limits.check(allowed("/proxy/a"), from("198.51.100.7", "203.0.113.50")).allow).toBe(false);
    expect(limits.check(allowed("/proxy/a"), from("198.51.100.8")).allow).toBe(true);
    // Behind the trusted proxy, the address it appended counts; one the client prepended does not.
    expect(limits.check(allowed("/proxy/a"), from("127.0.0.1", "203.0.113.60")).allow).toBe(true);
    expect(limits.check(allowed("/proxy/a"), from("127.0.0.1", "198.51.100.99, 203.0.113.60")).allow).toBe(
      false,
    );
    // A route without limits is not counted.
    const open = allowed("/open");
    expect(limits.check(open, from("198.51.100.7"))).toBe(open);
  });

  it("counts anonymous requests on an optional-key route per client address, and keyed ones by the key's limits only", () => {
    const limits = limiter({ now: WINDOW_START });
    const anonymous = (path: string) => {
      const rule = POLICY.match("GET", path);
      return decision({ allow: true, label: "anonymous", rule, path, query: "" });
    };
    expect(limits.check(anonymous("/gateway/a"), from("198.51.100.7")).allow).toBe(true);
    expect(limits.check(anonymous("/gateway/b"), from("198.51.100.7")).allow).toBe(false);
    expect(limits.check(anonymous("/gateway/a"), from("198.51.100.8")).allow).toBe(true);
    // A key is not held to the anonymous tier: its own (connected) limit applies.
    const connected = key("key_g", ["read"], { tier: "connected" });
    for (let i = 0; i < 5; i += 1) {
      const decided = limits.check(allowed("/gateway/a", connected), from("198.51.100.7"));
      expect(decided.allow).toBe(true);
      expect(header(decided, "ratelimit-policy")).toBe('"minute";q=300;w=60');
    }
  });

  it("adds peers' counts, hands its own over once, and admits limit / peers while counting alone", () => {
    const clock = { now: WINDOW_START + 1_000 };
    const limits = limiter(clock);
    const reader = key("key_p", ["read"]);
    limits.check(allowed("/burst", reader), from("x"));
    const deltas = limits.takeDeltas();
    expect(deltas).toContainEqual(["r0|k:key_p|burst|10000", WINDOW_START / 10_000, 1]);
    expect(deltas).toContainEqual(["k:key_p|hourly|3600000", Math.floor(clock.now / 3_600_000), 1]);
    expect(limits.takeDeltas()).toEqual([]);
    limits.addRemote("r0|k:key_p|burst|10000", WINDOW_START / 10_000, 2);
    expect(limits.check(allowed("/burst", reader), from("x")).allow).toBe(false);

    const alone = limiter(clock);
    alone.setShared(false, 3);
    const other = key("key_q", ["read"], { tier: "connected" });
    let admitted = 0;
    for (let i = 0; i < 400; i += 1)
      if (alone.check(allowed("/other", other), from("x")).allow) admitted += 1;
    expect(admitted).toBe(100);
    // Peers' counts do not count while alone; the share does.
    alone.setShared(true, 3);
    expect(alone.check(allowed("/other", other), from("x")).allow).toBe(true);
  });

  it("keeps at most maxCounters counters and drops those whose windows have passed", () => {
    const clock = { now: WINDOW_START };
    const limits = limiter(clock, { maxCounters: 1_000 });
    for (let i = 0; i < 1_500; i += 1) limits.check(allowed("/proxy/x"), from(`10.0.${i >> 8}.${i & 255}`));
    expect(limits.sweep()).toBe(1_000);
    limits.takeDeltas();
    clock.now += 3 * 300_000;
    expect(limits.sweep()).toBe(0);
    // A key whose counter was swept keeps counting (it is looked up again).
    const reader = key("key_s", ["read"]);
    limits.check(allowed("/burst", reader), from("x"));
    limits.takeDeltas();
    clock.now += 3 * 3_600_000;
    limits.sweep();
    for (let i = 0; i < 3; i += 1)
      expect(limits.check(allowed("/burst", reader), from("x")).allow).toBe(true);
    expect(limits.check(allowed("/burst", reader), from("x")).allow).toBe(false);
  });

  it("refuses a rule naming a tier the rate-limit file does not define", () => {
    const policy = compilePolicy({ rules: [{ path: "/x", kind: "public", rateLimit: { tier: "gold" } }] });
    expect(() => createRateLimiter({ ...baseOptions(), policy })).toThrow(
      /rules\[0\]: rateLimit names tier "gold"/,
    );
    expect(() => createRateLimiter({ ...baseOptions(), policy, file: undefined })).toThrow(/gold/);
  });

  it("passes refusals and unlimited decisions through untouched", () => {
    const none = createRateLimiter({ ...baseOptions(), file: undefined, policy: compilePolicy({}) });
    const unlimited = allowed("/other", key("key_n", ["read"]));
    expect(none.check(unlimited, from("x"))).toBe(unlimited);
    // A key's own limits apply even with no rate-limit file.
    const own = key("key_own", ["read"]);
    const withOwn = { ...own, rateLimits: [{ name: "own", limit: 1, windowMs: 60_000 }] };
    expect(none.check(allowed("/other", withOwn), from("x")).allow).toBe(true);
    expect(none.check(allowed("/other", withOwn), from("x")).refusal?.status).toBe(429);
    const refused = decision({ allow: false, label: "no_credential", path: "/", query: "" });
    expect(limiter({ now: WINDOW_START }).check(refused, from("x"))).toBe(refused);
  });
});

function baseOptions(): RateLimiterOptions {
  return { file: FILE, policy: POLICY, isTrusted: () => false, maxCounters: 1_000, expectedPeers: 1 };
}

describe("the seed examples", () => {
  it("load, and hold the seeds' figures", async () => {
    const { loadRateLimits } = await import("./load-rate-limits.js");
    const { loadPolicy } = await import("../policy/policy.js");
    const scopes = loadRateLimits("services/sidecar/examples/ratelimit-001-scopes.yaml").scopes;
    expect([scopes.read?.[0]?.limit, scopes.write?.[0]?.limit, scopes.admin?.[0]?.limit]).toEqual([
      1000, 2000, 5000,
    ]);
    expect(scopes.read?.[0]?.windowMs).toBe(3_600_000);
    const tiers = loadRateLimits("services/sidecar/examples/ratelimit-003-trust-tiers.yaml");
    expect(tiers.tiers.connected).toEqual([{ name: "minute", limit: 300, windowMs: 60_000 }]);
    expect(tiers.tiers.unverified).toEqual([{ name: "five-minutes", limit: 1, windowMs: 300_000 }]);
    const policy = loadPolicy("services/sidecar/examples/policy-003-agents-owner.yaml", {
      CRON_SECRET: "0123456789abcdef0123",
    });
    const limits = createRateLimiter({ ...baseOptions(), file: tiers, policy });
    const register = policy.match("POST", "/api/agents");
    const anonymous = decision({
      allow: true,
      label: "public",
      rule: register,
      path: "/api/agents",
      query: "",
    });
    expect(limits.check(anonymous, from("198.51.100.3")).allow).toBe(true);
    expect(limits.check(anonymous, from("198.51.100.3")).allow).toBe(false);
  });
});
