import { describe, expect, it } from "vitest";
import { bearerToken, extractCredential, splitQueryToken } from "./credentials.js";

const TOKEN = "lk_live_0123456789abcdefghijABCDEFGHIJ0123456789abcdef";
const none = { bearer: [], apiKey: [], query: [] };

describe("extractCredential", () => {
  it("finds nothing when nothing is sent", () => {
    expect(extractCredential(none, 512)).toEqual({ kind: "none" });
  });

  it("takes the credential from each source", () => {
    expect(extractCredential({ ...none, bearer: [TOKEN] }, 512)).toEqual({
      kind: "ok",
      value: TOKEN,
      source: "authorization",
    });
    expect(extractCredential({ ...none, apiKey: [TOKEN] }, 512)).toEqual({
      kind: "ok",
      value: TOKEN,
      source: "x-api-key",
    });
    expect(extractCredential({ ...none, query: [TOKEN] }, 512)).toEqual({
      kind: "ok",
      value: TOKEN,
      source: "query",
    });
  });

  it("counts the same value in several places once, and refuses two different ones", () => {
    expect(extractCredential({ bearer: [TOKEN], apiKey: [TOKEN], query: [TOKEN] }, 512).kind).toBe("ok");
    expect(extractCredential({ ...none, bearer: [TOKEN, `${TOKEN}x`] }, 512)).toEqual({ kind: "conflict" });
    expect(extractCredential({ ...none, bearer: [TOKEN], apiKey: ["other"] }, 512)).toEqual({
      kind: "conflict",
    });
    expect(extractCredential({ ...none, apiKey: [TOKEN], query: ["other"] }, 512)).toEqual({
      kind: "conflict",
    });
  });

  it("refuses oversized, empty and non-visible-ASCII values", () => {
    expect(extractCredential({ ...none, bearer: ["a".repeat(513)] }, 512)).toEqual({
      kind: "invalid",
      reason: "too_long",
    });
    expect(extractCredential({ ...none, bearer: ["a".repeat(512)] }, 512).kind).toBe("ok");
    expect(extractCredential({ ...none, bearer: [""] }, 512)).toEqual({ kind: "invalid", reason: "empty" });
    for (const bad of ["lk_caf\u00e9", "lk\u00ff\u00fe", "two words", "tab\there", "nul\u0000", "\u2028"]) {
      expect(extractCredential({ ...none, apiKey: [bad] }, 512)).toEqual({
        kind: "invalid",
        reason: "bad_characters",
      });
    }
  });

  it("decodes query tokens once and refuses ones that do not decode to visible ASCII", () => {
    expect(extractCredential({ ...none, query: ["lk%5Flive"] }, 512)).toMatchObject({
      kind: "ok",
      value: "lk_live",
    });
    expect(extractCredential({ ...none, query: ["%FF"] }, 512)).toEqual({
      kind: "invalid",
      reason: "bad_characters",
    });
    expect(extractCredential({ ...none, query: ["%zz"] }, 512)).toEqual({
      kind: "invalid",
      reason: "bad_characters",
    });
    expect(extractCredential({ ...none, query: ["a+b"] }, 512)).toEqual({
      kind: "invalid",
      reason: "bad_characters",
    });
    expect(extractCredential({ ...none, query: ["%41".repeat(600)] }, 512)).toEqual({
      kind: "invalid",
      reason: "too_long",
    });
    expect(extractCredential({ ...none, query: ["A".repeat(5000)] }, 512)).toEqual({
      kind: "invalid",
      reason: "too_long",
    });
  });
});

describe("bearerToken", () => {
  it("reads the Bearer scheme in any case and leaves other schemes alone", () => {
    expect(bearerToken(`Bearer ${TOKEN}`)).toBe(TOKEN);
    expect(bearerToken(`bEaReR   ${TOKEN}  `)).toBe(TOKEN);
    expect(bearerToken("Bearer")).toBe("");
    expect(bearerToken("Basic dXNlcg==")).toBeUndefined();
    expect(bearerToken("Bearerx abc")).toBeUndefined();
  });
});

describe("splitQueryToken", () => {
  it("takes out every token parameter and keeps the rest byte for byte", () => {
    expect(splitQueryToken("a=1&token=x&b=%2F&token=y")).toEqual({ tokens: ["x", "y"], rest: "a=1&b=%2F" });
    expect(splitQueryToken("token=x")).toEqual({ tokens: ["x"], rest: "" });
    expect(splitQueryToken("%74oken=x&t%6Fken=y")).toEqual({ tokens: ["x", "y"], rest: "" });
    expect(splitQueryToken("tokens=x&mytoken=y")).toEqual({ tokens: [], rest: "tokens=x&mytoken=y" });
    expect(splitQueryToken("token")).toEqual({ tokens: [""], rest: "" });
  });
});
