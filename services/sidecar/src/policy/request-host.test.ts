import { describe, expect, it } from "vitest";
import { policyProblems } from "../../test-support/policy-problems.js";
import { compilePolicy } from "./policy.js";
import { compileHostPattern, decideHost, normalizeHost } from "./request-host.js";

describe("normalizeHost", () => {
  it.each([
    ["stripe.pkg.example", "stripe.pkg.example", ""],
    ["STRIPE.Pkg.EXAMPLE", "stripe.pkg.example", ""],
    ["stripe.pkg.example.", "stripe.pkg.example", ""],
    ["stripe.pkg.example:8080", "stripe.pkg.example", ":8080"],
    ["Stripe.pkg.example.:443", "stripe.pkg.example", ":443"],
    ["127.0.0.1:8080", "127.0.0.1", ":8080"],
    ["[::1]:8080", "[::1]", ":8080"],
    ["[2001:DB8::1]", "[2001:db8::1]", ""],
    ["xn--bcher-kva.example", "xn--bcher-kva.example", ""],
  ])("reads %s as %s", (raw, name, port) => {
    expect(normalizeHost(raw)).toEqual({ ok: true, name, port });
  });

  it.each([
    "",
    "stripe.pkg.example..",
    ".stripe.pkg.example",
    "stripe..pkg.example",
    "evil.example@stripe.pkg.example",
    "stripe.pkg.example/admin",
    "stripe.pkg.example?x",
    "stripe.pkg.example#x",
    "stripe_pkg.example",
    "stripe.pkg.example:",
    "stripe.pkg.example:99999",
    "stripe.pkg.example:80:80",
    "stripe.pkg.example:8o",
    "stripe.pkg.example, admin.example",
    "stripe.pkg.example admin.example",
    " stripe.pkg.example",
    "stripe%2epkg.example",
    "stripe.pkg.exämple",
    "-stripe.pkg.example",
    "stripe-.pkg.example",
    `${"a".repeat(64)}.example`,
    `${"a.".repeat(130)}example`,
    "[::1",
    "[zz::1]",
    "[::1]x",
    "stripe.pkg.example\u0000",
  ])("refuses %j", (raw) => {
    expect(normalizeHost(raw)).toEqual({ ok: false, reason: "invalid_host" });
  });
});

describe("host patterns", () => {
  const wildcard = compileHostPattern("*.PKG.example.");
  const exact = compileHostPattern("api.example.com");

  it("match one label for * and the whole name otherwise", () => {
    if (!wildcard.ok || !exact.ok) throw new Error("patterns should compile");
    expect(wildcard.pattern.matches("stripe.pkg.example")).toBe(true);
    expect(wildcard.pattern.matches("pkg.example")).toBe(false);
    expect(wildcard.pattern.matches("a.b.pkg.example")).toBe(false);
    expect(wildcard.pattern.matches("stripepkg.example")).toBe(false);
    expect(wildcard.pattern.matches("stripe.pkg.example.evil")).toBe(false);
    expect(exact.pattern.matches("api.example.com")).toBe(true);
    expect(exact.pattern.matches("x.api.example.com")).toBe(false);
  });

  it.each(["*", "*.", "a.*.example", "**.example", "api.example.com:443", "api example", "*.pkg_example"])(
    "refuse %j",
    (pattern) => {
      expect(compileHostPattern(pattern).ok).toBe(false);
    },
  );
});

describe("decideHost", () => {
  it("refuses what cannot be decided on", () => {
    expect(decideHost({})).toEqual({ ok: false, reason: "missing_host" });
    expect(decideHost({ host: "a.example", hostAmbiguous: true })).toEqual({
      ok: false,
      reason: "duplicate_host",
    });
    expect(decideHost({ host: "a.example", forwardedHost: "b.example" })).toEqual({
      ok: false,
      reason: "conflicting_host",
    });
    expect(decideHost({ host: "a.example", forwardedHost: "bad host" })).toEqual({
      ok: false,
      reason: "conflicting_host",
    });
    expect(decideHost({ host: "A.example", pathAsSent: true })).toEqual({
      ok: false,
      reason: "not_canonical_host",
    });
    expect(decideHost({ host: "a.example.", pathAsSent: true })).toEqual({
      ok: false,
      reason: "not_canonical_host",
    });
  });

  it("accepts a proxy's agreeing X-Forwarded-Host, whatever its case and port", () => {
    expect(decideHost({ host: "a.example", forwardedHost: "A.example:443" })).toEqual({
      ok: true,
      name: "a.example",
      port: "",
    });
    expect(decideHost({ host: "a.example:8443", pathAsSent: true })).toEqual({
      ok: true,
      name: "a.example",
      port: ":8443",
    });
  });
});

describe("rules with hosts", () => {
  const policy = compilePolicy({
    preset: "all-private",
    rules: [
      { name: "packages", host: "*.pkg.example", path: "/**", kind: "key", keychains: true },
      { name: "docs", host: ["docs.example", "help.example"], path: "/**", kind: "public" },
      { name: "any-host", path: "/healthz", kind: "public" },
    ],
  });

  it("match only requests naming one of their hosts", () => {
    expect(policy.matchesHosts).toBe(true);
    expect(policy.match("GET", "/x", "stripe.pkg.example").label).toBe('rules[0] ("packages")');
    expect(policy.match("GET", "/x", "help.example").label).toBe('rules[1] ("docs")');
    expect(policy.match("GET", "/x", "other.example").label).toBe("default");
    expect(policy.match("GET", "/x", undefined).label).toBe("default");
    expect(policy.match("GET", "/healthz", undefined).label).toBe('rules[2] ("any-host")');
    const packages = policy.match("GET", "/x", "stripe.pkg.example").access;
    expect(packages.kind === "key" && packages.keychains).toBe(true);
    expect(compilePolicy({ rules: [{ path: "/**", kind: "public" }] }).matchesHosts).toBe(false);
  });

  it("refuse bad hosts and keychains on rules that take no key", () => {
    expect(policyProblems({ rules: [{ name: "p", host: "*.x.*", path: "/**", kind: "key" }] })[0]).toMatch(
      /^rules\[0\] \("p"\): host "\*\.x\.\*" must be a host name/,
    );
    expect(policyProblems({ rules: [{ host: [], path: "/**", kind: "key" }] })[0]).toMatch(
      /at least one host/,
    );
    expect(policyProblems({ rules: [{ path: "/**", kind: "public", keychains: true }] })[0]).toMatch(
      /keychains/,
    );
    expect(
      policyProblems({
        rules: [{ path: "/**", kind: "secret", secret: "s3cret-value-long", keychains: true }],
      })[0],
    ).toMatch(/keychains/);
  });

  it("warn about a method-restricted host rule that is public for other methods on that host", () => {
    const warned = compilePolicy({
      rules: [
        {
          name: "writes",
          host: "*.pkg.example",
          methods: ["POST"],
          path: "/run",
          kind: "key",
          keychains: true,
        },
        { name: "reads", path: "/**", kind: "public" },
      ],
    });
    expect(warned.warnings).toEqual([
      'rules[0] ("writes"): /run needs a key for POST but is public for GET, HEAD, PUT, PATCH, DELETE, OPTIONS',
    ]);
  });
});
