import { describe, expect, it } from "vitest";
import { missingScopes, scopeListError } from "./scopes.js";

describe("missingScopes", () => {
  it("applies read ⊂ write ⊂ admin", () => {
    expect(missingScopes(["admin"], ["read", "write", "admin"])).toEqual([]);
    expect(missingScopes(["write"], ["read", "write"])).toEqual([]);
    expect(missingScopes(["write"], ["admin"])).toEqual(["admin"]);
    expect(missingScopes(["read"], ["write"])).toEqual(["write"]);
    expect(missingScopes([], ["read"])).toEqual(["read"]);
  });
  it("matches resource scopes exactly", () => {
    expect(missingScopes(["chats:write"], ["chats:write"])).toEqual([]);
    expect(missingScopes(["admin"], ["chats:write"])).toEqual(["chats:write"]);
    expect(missingScopes(["chats:write"], ["chats:read"])).toEqual(["chats:read"]);
  });
  it("requires nothing when nothing is required", () => {
    expect(missingScopes([], [])).toEqual([]);
  });
});

describe("scopeListError", () => {
  it("accepts valid scopes", () =>
    expect(scopeListError(["read", "chats:write", "a.b_c-d"])).toBeUndefined());
  it("rejects bad characters, empty, long and too many", () => {
    expect(scopeListError(["Read"])).toMatch(/Read/);
    expect(scopeListError([""])).toMatch(/scope/);
    expect(scopeListError(["a".repeat(65)])).toMatch(/scope/);
    expect(scopeListError(["a b"])).toMatch(/scope/);
    expect(scopeListError(Array.from({ length: 33 }, (_, i) => `s${i}`))).toMatch(/at most 32/);
  });
});
