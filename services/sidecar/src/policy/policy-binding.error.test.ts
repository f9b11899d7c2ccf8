import { describe, expect, it } from "vitest";
import { policyProblems } from "../../test-support/policy-problems.js";
import { verifiedKey } from "../../test-support/verified-key.js";
import type { VerifiedKey } from "../key-checker.js";
import { keyBindingRefusal, placementRefusal } from "./key-binding.js";
import { compilePolicy, type KeyRequirements } from "./policy.js";

const TEAM_A = "team_AAAAAAAAAAAAAAAAAAAAAA";
const TEAM_B = "team_BBBBBBBBBBBBBBBBBBBBBB";
const TEAM_C = "team_CCCCCCCCCCCCCCCCCCCCCC";

const key = (fields: Partial<VerifiedKey> = {}) => verifiedKey({ teamId: TEAM_A, ...fields });

const requirements = (policy: ReturnType<typeof compilePolicy>, method: string, path: string) =>
  policy.match(method, path).access as unknown as KeyRequirements;

describe("teams and environments in a policy", () => {
  const policy = compilePolicy({
    preset: "reads-public",
    teams: [TEAM_A],
    environments: ["prod"],
    rules: [
      { name: "partners", path: "/partners/**", kind: "key", teams: [TEAM_A, TEAM_B] },
      { name: "staging", path: "/staging/**", kind: "optional-key", environments: ["staging", "prod"] },
      { name: "cron", path: "/cron", kind: "secret", secret: "cron-secret-0123456789" },
    ],
  });

  it("binds every key and optional-key rule and the default; a rule's own list replaces that one dimension", () => {
    const writes = requirements(policy, "POST", "/orders");
    expect([...(writes.teams ?? [])]).toEqual([TEAM_A]);
    expect([...(writes.environments ?? [])]).toEqual(["prod"]);
    const partners = requirements(policy, "GET", "/partners/x");
    expect([...(partners.teams ?? [])]).toEqual([TEAM_A, TEAM_B]);
    expect([...(partners.environments ?? [])]).toEqual(["prod"]);
    const staging = requirements(policy, "GET", "/staging/x");
    expect([...(staging.teams ?? [])]).toEqual([TEAM_A]);
    expect([...(staging.environments ?? [])]).toEqual(["staging", "prod"]);
    expect(policy.match("GET", "/public").access.kind).toBe("public");
    expect("notAccepted" in policy.match("POST", "/cron").access).toBe(false);
  });

  it("refuses a key of another team or environment with the route's one answer, which names no team", () => {
    const rule = policy.match("POST", "/orders");
    const otherTeam = placementRefusal(rule, key({ teamId: TEAM_C }));
    const otherEnvironment = placementRefusal(rule, key({ environment: "staging" }));
    expect(otherTeam?.label).toBe("wrong_team");
    expect(otherEnvironment?.label).toBe("wrong_environment");
    expect(otherTeam?.refusal).toBe(otherEnvironment?.refusal);
    expect(otherTeam?.refusal).toMatchObject({ status: 403, code: "forbidden", headers: [] });
    expect(otherTeam?.refusal.message).not.toContain("team_");
    expect(otherTeam?.refusal.message).toContain("prod");
    expect(placementRefusal(rule, key())).toBeUndefined();
    expect(keyBindingRefusal(rule, key(), "/orders", "/orders")).toBeUndefined();
    expect(placementRefusal(policy.match("GET", "/partners/x"), key({ teamId: TEAM_B }))).toBeUndefined();
  });

  it("takes teams from teamsEnv when its variable is set, over the file's list", () => {
    const document = { teamsEnv: "APP_TEAMS", teams: [TEAM_A], rules: [] };
    const fromEnv = compilePolicy(document, { env: { APP_TEAMS: ` ${TEAM_B} , ${TEAM_C}` } });
    expect([...(requirements(fromEnv, "GET", "/x").teams ?? [])]).toEqual([TEAM_B, TEAM_C]);
    const fromFile = compilePolicy(document, { env: {} });
    expect([...(requirements(fromFile, "GET", "/x").teams ?? [])]).toEqual([TEAM_A]);
  });

  it.each<[string, Record<string, unknown>, NodeJS.ProcessEnv, RegExp]>([
    ["an empty team list", { teams: [] }, {}, /teams: must name at least one team/],
    ["a team name instead of an id", { teams: ["payments"] }, {}, /teams\.0: must be a team id/],
    ["a team id of the wrong length", { teams: ["team_short"] }, {}, /must be a team id/],
    ["a list that is a string", { teams: TEAM_A }, {}, /teams: .*array/],
    ["more than 100 teams", { teams: Array.from({ length: 101 }, () => TEAM_A) }, {}, /teams: .*100/],
    ["teamsEnv unset without a list", { teamsEnv: "APP_TEAMS" }, {}, /teamsEnv: APP_TEAMS is not set/],
    ["teamsEnv holding a name", { teamsEnv: "APP_TEAMS" }, { APP_TEAMS: "payments" }, /APP_TEAMS must be/],
    [
      "teamsEnv that is not a variable name",
      { teamsEnv: "app-teams" },
      {},
      /teamsEnv: must be an environment variable name/,
    ],
    [
      "an empty environment list",
      { environments: [] },
      {},
      /environments: must name at least one environment/,
    ],
  ])("refuses %s at the policy level", (_name, fields, env, message) => {
    expect(policyProblems({ ...fields, rules: [] }, env).join("\n")).toMatch(message);
  });

  it("takes teams on key and optional-key rules only", () => {
    for (const kind of ["public", "secret"]) {
      const problems = policyProblems(
        {
          rules: [
            { path: "/x", kind, teams: [TEAM_A], ...(kind === "secret" ? { secret: "s".repeat(16) } : {}) },
          ],
        },
        {},
      );
      expect(problems.join("\n")).toMatch(/teams/);
    }
    expect(policyProblems({ rules: [{ path: "/x", kind: "key", teams: ["team_x"] }] }).join("\n")).toMatch(
      /rules\[0\]: teams\.0: must be a team id/,
    );
  });
});
