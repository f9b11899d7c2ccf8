import { describe, expect, it } from "vitest";
import { isValidEnvironment, isValidOwner, tokenEnvironment } from "./key-labels.js";

describe("environment labels", () => {
  it("accept lower-case labels and refuse other spellings", () => {
    for (const label of ["live", "test", "prod", "staging", "dev", "eu-west_1", "a".repeat(32)]) {
      expect(isValidEnvironment(label), label).toBe(true);
    }
    for (const label of [
      "",
      "Prod",
      "1prod",
      "-prod",
      "pröd",
      "prod env",
      "prod\n",
      "a".repeat(33),
      "prod/x",
    ]) {
      expect(isValidEnvironment(label), label).toBe(false);
    }
  });

  it("map to the token's segment: test for test, live for every other label", () => {
    expect(tokenEnvironment("test")).toBe("test");
    for (const label of ["live", "prod", "staging", "dev", "testing"])
      expect(tokenEnvironment(label)).toBe("live");
  });
});

describe("owners", () => {
  it("accept ids with one spelling as a path segment", () => {
    for (const owner of ["a", "agent-42", "user:alice@example.com", "A.b_c~d+e", "x".repeat(128), "v1.2"]) {
      expect(isValidOwner(owner), owner).toBe(true);
    }
  });

  it("refuse separators, encodings, dot forms and anything outside printable ASCII", () => {
    for (const owner of [
      "",
      ".",
      "..",
      ".alice",
      "alice.",
      "-alice",
      "a/b",
      "a\\b",
      "a%2Fb",
      "a;b",
      "a?b",
      "a#b",
      "a b",
      "a\tb",
      "ålice",
      "alice\n",
      "{owner}",
      "x".repeat(129),
    ]) {
      expect(isValidOwner(owner), JSON.stringify(owner)).toBe(false);
    }
  });
});
