import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compilePolicy, PolicyError } from "../policy/policy.js";
import { addressKey, clientAddress } from "./client-address.js";
import { loadRateLimits, parseRateLimits, RateLimitConfigError } from "./load-rate-limits.js";
import { parseWindow } from "./rate-limit-schema.js";

const limit = (fields: Record<string, unknown>) => ({
  tiers: { t: [{ name: "n", limit: 1, window: "1m", ...fields }] },
});

describe("rate-limit file as hostile input", () => {
  it.each([
    [{ limit: 0 }, "tiers.t.0.limit: must be at least 1"],
    [{ limit: -5 }, "tiers.t.0.limit: must be at least 1"],
    [{ limit: 1.5 }, "tiers.t.0.limit: must be a whole number"],
    [{ limit: 1e12 }, "tiers.t.0.limit: must be at most 1000000000"],
    [{ limit: "100" }, "tiers.t.0.limit"],
    [{ window: "0s" }, "tiers.t.0.window: must be whole seconds"],
    [{ window: "-1m" }, "tiers.t.0.window: must be whole seconds"],
    [{ window: "500ms" }, "tiers.t.0.window: must be whole seconds"],
    [{ window: "2d" }, "tiers.t.0.window: must be whole seconds"],
    [{ window: "1 hour" }, "tiers.t.0.window: must be whole seconds"],
    [{ window: 1e300 }, "tiers.t.0.window: must be whole seconds"],
    [{ name: "Has Spaces" }, "tiers.t.0.name: must be 1-32"],
    [{ name: '"quoted"' }, "tiers.t.0.name: must be 1-32"],
    [{ burst: 4 }, 'Unrecognized key: "burst"'],
  ])("refuses %j naming the entry", (fields, message) => {
    expect(() => parseRateLimits(limit(fields))).toThrow(RateLimitConfigError);
    expect(() => parseRateLimits(limit(fields))).toThrow(message);
  });

  it("refuses duplicate names, empty and oversized lists, unknown scopes, tiers and fields", () => {
    const twice = [
      { name: "a", limit: 1, window: "1m" },
      { name: "a", limit: 2, window: "1h" },
    ];
    expect(() => parseRateLimits({ tiers: { t: twice } })).toThrow(
      'tiers.t.1.name: duplicate limit name "a"',
    );
    expect(() => parseRateLimits({ tiers: { t: [] } })).toThrow("must name at least one limit");
    const many = Array.from({ length: 9 }, (_, i) => ({ name: `l${i}`, limit: 1, window: "1m" }));
    expect(() => parseRateLimits({ tiers: { t: many } })).toThrow("at most 8 limits");
    expect(() => parseRateLimits({ scopes: { superuser: twice.slice(0, 1) } })).toThrow('"superuser"');
    expect(() => parseRateLimits({ tiers: { "Bad Tier": twice.slice(0, 1) } })).toThrow("tiers.Bad Tier");
    expect(() => parseRateLimits({ unknownTier: "ghost" })).toThrow("unknownTier: names no tier");
    expect(() => parseRateLimits({ version: 2 })).toThrow("version");
    expect(() => parseRateLimits({ limits: [] })).toThrow('Unrecognized key: "limits"');
  });

  it("reads the file, and names it when it is missing or not YAML", () => {
    const dir = mkdtempSync(join(tmpdir(), "lk-ratelimits-"));
    const good = join(dir, "good.yaml");
    writeFileSync(good, "tiers:\n  verified:\n    - { name: minute, limit: 1, window: 1m }\n");
    expect(loadRateLimits(good).tiers.verified).toEqual([{ name: "minute", limit: 1, windowMs: 60_000 }]);
    expect(() => loadRateLimits(join(dir, "missing.yaml"))).toThrow(/LATCHKEY_RATE_LIMITS: cannot read/);
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "tiers: [unclosed");
    expect(() => loadRateLimits(bad)).toThrow(/is not valid YAML/);
  });

  it("parses windows from 1 s to 1 d only", () => {
    expect(parseWindow("10s")).toBe(10_000);
    expect(parseWindow("5m")).toBe(300_000);
    expect(parseWindow("1d")).toBe(86_400_000);
    expect(parseWindow(60_000)).toBe(60_000);
    expect(parseWindow("999ms")).toBeUndefined();
    expect(parseWindow("1.5m")).toBeUndefined();
    expect(parseWindow("1500ms")).toBeUndefined();
    expect(parseWindow(2_500)).toBeUndefined();
    expect(parseWindow("2000ms")).toBe(2_000);
    expect(parseWindow(Number.NaN)).toBeUndefined();
  });
});

describe("a policy rule's rateLimit as hostile input", () => {
  it("refuses bad limits on a rule, naming the rule", () => {
    const rule = (rateLimit: unknown) => ({ rules: [{ name: "api", path: "/x", kind: "key", rateLimit }] });
    expect(() => compilePolicy(rule([{ name: "a", limit: 0, window: "1m" }]))).toThrow(PolicyError);
    expect(() => compilePolicy(rule([{ name: "a", limit: 0, window: "1m" }]))).toThrow('rules[0] ("api")');
    expect(() => compilePolicy(rule({ tier: "Bad Tier" }))).toThrow(PolicyError);
    expect(() => compilePolicy(rule({ tier: "t", limit: 3 }))).toThrow(PolicyError);
    expect(() => compilePolicy(rule("1000/h"))).toThrow(PolicyError);
    expect(compilePolicy(rule({ tier: "verified" })).rules[0]?.rateLimit).toEqual({ tier: "verified" });
  });
});

describe("client address", () => {
  const trusted = (address: string) => address === "10.0.0.1" || address === "10.0.0.2";
  it("is the peer unless a trusted proxy forwarded the request", () => {
    expect(clientAddress("198.51.100.1", "203.0.113.9", trusted)).toBe("198.51.100.1");
    expect(clientAddress("10.0.0.1", "203.0.113.9", trusted)).toBe("203.0.113.9");
    expect(clientAddress("10.0.0.1", "1.1.1.1, 203.0.113.9, 10.0.0.2", trusted)).toBe("203.0.113.9");
    expect(clientAddress("10.0.0.1", undefined, trusted)).toBe("10.0.0.1");
    expect(clientAddress("10.0.0.1", " , 10.0.0.2", trusted)).toBe("10.0.0.1");
    expect(clientAddress("10.0.0.1", "junk", trusted)).toBe("junk");
  });
  it("counts IPv6 per /64 and IPv4-mapped addresses as IPv4", () => {
    expect(addressKey("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(addressKey("2001:DB8:0001:0002::9")).toBe("2001:db8:1:2::/64");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
    expect(addressKey("::ffff:192.0.2.1")).toBe("192.0.2.1");
    expect(addressKey("x".repeat(500))).toHaveLength(64);
  });
});
