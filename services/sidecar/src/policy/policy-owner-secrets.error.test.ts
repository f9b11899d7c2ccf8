import { describe, expect, it } from "vitest";
import { policyProblems } from "../../test-support/policy-problems.js";
import { verifiedKey } from "../../test-support/verified-key.js";
import type { VerifiedKey } from "../key-checker.js";
import { keyBindingRefusal, ownerInPath } from "./key-binding.js";
import { normalizePath } from "./normalize-path.js";
import { compilePolicy } from "./policy.js";
import { secretMatches } from "./secret-match.js";

const CURRENT = "current-secret-0123456789";
const PREVIOUS = "previous-secret-0123456789";

const problemsOf = policyProblems;

const rule = (fields: Record<string, unknown>) => ({ rules: [{ name: "r", path: "/x", ...fields }] });

const key = verifiedKey;

describe("environments in a policy", () => {
  it.each([
    [[], /at least one environment/],
    [["Prod"], /environment label/],
    [["prod env"], /environment label/],
    [["pröd"], /environment label/],
    [["-prod"], /environment label/],
    [["a".repeat(33)], /environment label/],
    [[""], /environment label/],
    ["prod", /expected array/],
  ])("refuses environments %j", (environments, message) => {
    expect(problemsOf(rule({ kind: "key", environments })).join("\n")).toMatch(message);
  });

  it("is for key and optional-key rules only", () => {
    expect(problemsOf(rule({ kind: "public", environments: ["prod"] })).join("\n")).toMatch(/environments/);
    expect(
      problemsOf(rule({ kind: "secret", secretEnv: "S", environments: ["prod"] }), { S: CURRENT }).join("\n"),
    ).toMatch(/environments/);
    const policy = compilePolicy(rule({ kind: "optional-key", environments: ["prod", "staging"] }));
    const access = policy.match("GET", "/x").access;
    expect(access.kind === "optional-key" && [...(access.environments ?? [])]).toEqual(["prod", "staging"]);
  });
});

describe("{owner} in a policy", () => {
  it.each([
    [{ kind: "public", path: "/agents/{owner}" }, /needs kind "key"/],
    [{ kind: "optional-key", path: "/agents/{owner}" }, /needs kind "key"/],
    [{ kind: "secret", secret: CURRENT, path: "/agents/{owner}" }, /needs kind "key"/],
    [{ kind: "key", paths: ["/agents/{owner}", "/agents"] }, /every path of the rule or in none/],
    [{ kind: "key", path: "/agents/{owner}/{owner}" }, /once/],
    [{ kind: "key", path: "/agents/{id}" }, /only path parameter is \{owner\}/],
    [{ kind: "key", path: "/agents/x{owner}" }, /only path parameter is \{owner\}/],
    [{ kind: "key", path: "/agents/{owner" }, /only path parameter is \{owner\}/],
    [{ kind: "key", path: "/agents/%7Bowner%7D" }, /must not contain %/],
  ])("refuses %j", (fields, message) => {
    expect(problemsOf({ rules: [{ name: "r", ...fields }] }).join("\n")).toMatch(message);
  });

  const policy = compilePolicy({
    rules: [{ path: "/agents/{owner}/**", kind: "key", methods: ["PUT"] }],
  });
  const owner = (raw: string) => {
    const normalized = normalizePath(raw);
    if (!normalized.ok) return `rejected:${normalized.reason}`;
    const matched = policy.match("PUT", normalized.matchPath);
    return ownerInPath(matched, normalized.matchPath, normalized.path);
  };

  it.each([
    ["/agents/alice", "alice"],
    ["/agents/alice/x/y", "alice"],
    ["/agents/%61lice", "alice"],
    ["/Agents/Alice", "Alice"],
    ["/agents/alice.", "alice."],
    ["/agents//alice", "alice"],
    ["/agents/x/../alice", "alice"],
    ["/agents/alice;v=1", undefined],
    ["/agents/alice;", undefined],
    ["/agents/alice%2Fbob", "rejected:encoded_separator"],
    ["/agents/%252F", "rejected:double_encoding"],
    ["/agents", undefined],
  ])("reads the owner of %s as %j", (raw, expected) => {
    expect(owner(raw)).toBe(expected);
  });

  it("compares the owner exactly, and never matches a key without one", () => {
    const matched = policy.match("PUT", "/agents/alice");
    const refusal = (k: VerifiedKey, path: string) => keyBindingRefusal(matched, k, path, path)?.label;
    expect(refusal(key({ owner: "alice" }), "/agents/alice")).toBeUndefined();
    expect(refusal(key({ owner: "alice" }), "/agents/Alice")).toBe("wrong_owner");
    expect(refusal(key({ owner: "alice" }), "/agents/alice.")).toBe("wrong_owner");
    expect(refusal(key({ owner: "alice" }), "/agents/alic")).toBe("wrong_owner");
    expect(refusal(key({}), "/agents/alice")).toBe("wrong_owner");
    expect(refusal(key({ owner: "" }), "/agents/alice")).toBe("wrong_owner");
  });
});

describe("secret rules", () => {
  it("need a secret from the environment or the file, at least 16 characters, never echoed", () => {
    expect(problemsOf(rule({ kind: "secret" }))).toEqual([
      'rules[0] ("r"): a secret rule needs secretEnv or secret',
    ]);
    expect(problemsOf(rule({ kind: "secret", secret: "short" }))).toEqual([
      'rules[0] ("r"): secret: must hold at least 16 characters',
    ]);
    expect(problemsOf(rule({ kind: "secret", secretEnv: "S" }), { S: "short" })).toEqual([
      'rules[0] ("r"): secretEnv: S must hold at least 16 characters',
    ]);
    // An unset previous secret is no previous secret: the rotation window is over.
    const unsetPrevious = compilePolicy(rule({ kind: "secret", secret: CURRENT, previousSecretEnv: "P" }));
    const access = unsetPrevious.match("GET", "/x").access;
    expect(access.kind === "secret" && access.secrets.previous).toBeUndefined();
    const shortPrevious = problemsOf(rule({ kind: "secret", secret: CURRENT, previousSecret: "tiny" }));
    expect(shortPrevious.join("\n")).not.toContain("tiny");
    expect(problemsOf(rule({ kind: "secret", secret: "" })).join("\n")).toMatch(/secret/);
    expect(problemsOf(rule({ kind: "secret", secretEnv: "1BAD" })).join("\n")).toMatch(/variable name/);
    expect(
      problemsOf(rule({ kind: "secret", secret: CURRENT, previousSecretUntil: "2027-01-01T00:00:00Z" })),
    ).toEqual(['rules[0] ("r"): previousSecretUntil needs previousSecretEnv or previousSecret']);
    expect(
      problemsOf(
        rule({ kind: "secret", secret: CURRENT, previousSecret: PREVIOUS, previousSecretUntil: "tomorrow" }),
      ).join("\n"),
    ).toMatch(/previousSecretUntil/);
  });

  const secretsOf = (document: unknown, env: NodeJS.ProcessEnv = {}) => {
    const access = compilePolicy(document, { env }).match("GET", "/x").access;
    if (access.kind !== "secret") throw new Error("not a secret rule");
    return access.secrets;
  };

  it("takes the environment over the file (seed 000's precedence), and the file when the variable is unset or empty", () => {
    const document = rule({ kind: "secret", secretEnv: "S", secret: CURRENT });
    const fromEnv = secretsOf(document, { S: "from-the-environment-0123" });
    expect(secretMatches(fromEnv, "from-the-environment-0123", Date.now())).toBe(true);
    expect(secretMatches(fromEnv, CURRENT, Date.now())).toBe(false);
    for (const env of [{}, { S: "" }]) {
      const fromFile = secretsOf(document, env);
      expect(secretMatches(fromFile, CURRENT, Date.now())).toBe(true);
    }
  });

  it("accepts the previous secret until previousSecretUntil, and the current one throughout", () => {
    const until = "2030-01-01T00:00:00Z";
    const secrets = secretsOf(
      rule({ kind: "secret", secret: CURRENT, previousSecretEnv: "P", previousSecretUntil: until }),
      { P: PREVIOUS },
    );
    const before = Date.parse(until) - 1;
    const after = Date.parse(until);
    expect(secretMatches(secrets, CURRENT, before)).toBe(true);
    expect(secretMatches(secrets, PREVIOUS, before)).toBe(true);
    expect(secretMatches(secrets, CURRENT, after)).toBe(true);
    expect(secretMatches(secrets, PREVIOUS, after)).toBe(false);
    expect(secretMatches(secrets, "", before)).toBe(false);
    expect(secretMatches(secrets, `${PREVIOUS} `, before)).toBe(false);
  });

  it("warns at start when the rotation window has already ended", () => {
    const policy = compilePolicy(
      rule({
        kind: "secret",
        secret: CURRENT,
        previousSecret: PREVIOUS,
        previousSecretUntil: "2020-01-01T00:00:00Z",
      }),
    );
    expect(policy.warnings.join("\n")).toMatch(/previousSecretUntil .* has passed/);
    expect(policy.warnings.join("\n")).not.toContain(PREVIOUS);
  });
});

describe("optional-key rules", () => {
  it("take scopes, environments and allowQueryToken like key rules, and no secret fields", () => {
    const policy = compilePolicy(rule({ kind: "optional-key", scopes: ["read"], allowQueryToken: true }));
    expect(policy.match("GET", "/x").access).toMatchObject({
      kind: "optional-key",
      scopes: ["read"],
      allowQueryToken: true,
    });
    expect(problemsOf(rule({ kind: "optional-key", secretEnv: "S" })).join("\n")).toMatch(/secretEnv/);
    expect(problemsOf(rule({ kind: "optional-key", keepQueryToken: true })).join("\n")).toMatch(
      /keepQueryToken/,
    );
  });
});
