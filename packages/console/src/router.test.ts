import { describe, expect, it } from "vitest";
import { href, parseRoute, type Route } from "./router.js";

describe("parseRoute", () => {
  it.each<[string, Route]>([
    ["", { name: "teams" }],
    ["#/", { name: "teams" }],
    ["#/teams", { name: "teams" }],
    ["#/teams/team_abc", { name: "team", teamId: "team_abc" }],
    ["#/keys/key_Abc123", { name: "key", keyId: "key_Abc123" }],
    ["#/audit", { name: "audit" }],
    ["#/audit?keyId=key_x&teamId=team_y", { name: "audit", keyId: "key_x", teamId: "team_y" }],
    ["#/keychains?teamId=team_y", { name: "keychains", teamId: "team_y" }],
  ])("reads %s", (hash, route) => {
    expect(parseRoute(hash)).toEqual(route);
  });

  it.each([
    "#/keys/../teams",
    "#/keys/%2e%2e",
    "#/keys/<script>",
    "#/keys/key_a/extra",
    `#/keys/${"a".repeat(65)}`,
    "#/nowhere",
    "#/teams/a b",
  ])("treats %s as no screen rather than an id", (hash) => {
    expect(parseRoute(hash).name).toBe("not-found");
  });

  it("drops query values that are not ids", () => {
    expect(parseRoute("#/audit?keyId=javascript:alert(1)&teamId=team_ok")).toEqual({
      name: "audit",
      teamId: "team_ok",
    });
  });

  it("round-trips every route through href", () => {
    const routes: Route[] = [
      { name: "teams" },
      { name: "team", teamId: "team_a" },
      { name: "key", keyId: "key_b" },
      { name: "audit", keyId: "key_b", teamId: "team_a" },
      { name: "keychains", teamId: "team_a" },
    ];
    for (const route of routes) expect(parseRoute(href(route))).toEqual(route);
  });
});
