import { missingScopes } from "@latchkey/token";
import { describe, expect, it } from "vitest";
import { effectiveScopes, hasScopes } from "./has-scopes.js";

describe("hasScopes", () => {
  it("holds when nothing is required", () => {
    expect(hasScopes([], [])).toBe(true);
  });

  it("lets admin imply write and read, and write imply read", () => {
    expect(hasScopes(["admin"], ["read", "write", "admin"])).toBe(true);
    expect(hasScopes(["write"], ["read", "write"])).toBe(true);
    expect(hasScopes(["write"], ["admin"])).toBe(false);
    expect(hasScopes(["read"], ["write"])).toBe(false);
  });

  it("matches resource scopes exactly, with no implication between them", () => {
    expect(hasScopes(["chats:write"], ["chats:write"])).toBe(true);
    expect(hasScopes(["chats:write"], ["chats:read"])).toBe(false);
    expect(hasScopes(["admin"], ["chats:read"])).toBe(false);
    expect(hasScopes(["chats:admin"], ["chats:write"])).toBe(false);
  });

  it("accepts a precomputed effective set", () => {
    const effective = effectiveScopes(["admin", "billing:read"]);
    expect([...effective].sort()).toEqual(["admin", "billing:read", "read", "write"]);
    expect(hasScopes(effective, ["read", "billing:read"])).toBe(true);
    expect(hasScopes(effective, ["billing:write"])).toBe(false);
  });

  it("agrees with the token-service's rule on every combination", () => {
    const scopes = ["read", "write", "admin", "chats:read", "chats:write"];
    const subsets = (list: string[]): string[][] =>
      list.reduce<string[][]>((all, scope) => all.concat(all.map((s) => [...s, scope])), [[]]);
    for (const granted of subsets(scopes)) {
      const effective = effectiveScopes(granted);
      for (const required of subsets(scopes)) {
        const expected = missingScopes(granted, required).length === 0;
        expect(hasScopes(granted, required)).toBe(expected);
        expect(hasScopes(effective, required)).toBe(expected);
      }
    }
  });
});
