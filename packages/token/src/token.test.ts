import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BASE62_ALPHABET, encodeBase62Fixed } from "./base62.js";
import {
  CHECKSUM_LENGTH,
  findTokens,
  generateToken,
  hashToken,
  parseToken,
  SECRET_LENGTH,
  TOKEN_PATTERN,
  tokenHint,
} from "./token.js";

describe("generateToken / parseToken", () => {
  it("round-trips for both environments and several prefixes", () => {
    for (const prefix of ["lk", "og", "oai", "oag", "a1"]) {
      for (const environment of ["live", "test"] as const) {
        const token = generateToken({ prefix, environment });
        expect(token.startsWith(`${prefix}_${environment}_`)).toBe(true);
        expect(token.length).toBe(prefix.length + environment.length + 2 + SECRET_LENGTH + CHECKSUM_LENGTH);
        expect(parseToken(token, prefix)).toEqual({ ok: true, value: { prefix, environment, token } });
      }
    }
  });

  it("draws at least 256 bits of secret", () => {
    expect(SECRET_LENGTH * Math.log2(62)).toBeGreaterThanOrEqual(256);
  });

  it("never repeats and uses the whole alphabet", () => {
    const seen = new Set<string>();
    const chars = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const token = generateToken({ prefix: "lk", environment: "live" });
      seen.add(token);
      for (const c of token.slice(8, 8 + SECRET_LENGTH)) chars.add(c);
    }
    expect(seen.size).toBe(2000);
    expect(chars.size).toBe(62);
  });

  it("rejects invalid prefixes and environments at generation", () => {
    expect(() => generateToken({ prefix: "LK", environment: "live" })).toThrow(/prefix/);
    expect(() => generateToken({ prefix: "lk_x", environment: "live" })).toThrow(/prefix/);
    expect(() => generateToken({ prefix: "lk", environment: "prod" as "live" })).toThrow(/environment/);
  });
});

describe("parseToken rejects every kind of malformed input", () => {
  const good = generateToken({ prefix: "lk", environment: "live" });
  const flip = (s: string, i: number) => {
    const c = s[i] ?? "0";
    const next = BASE62_ALPHABET[(BASE62_ALPHABET.indexOf(c) + 1) % 62];
    return s.slice(0, i) + next + s.slice(i + 1);
  };
  const cases: Array<[string, string, string]> = [
    ["empty", "", "empty"],
    ["too long", "x".repeat(513), "too_long"],
    ["missing checksum", good.slice(0, -1), "shape"],
    ["extra character", `${good}a`, "shape"],
    ["typo in secret", flip(good, 12), "checksum"],
    ["typo in checksum", flip(good, good.length - 1), "checksum"],
    ["wrong environment", good.replace("_live_", "_prod_"), "shape"],
    ["swapped environment", good.replace("_live_", "_test_"), "checksum"],
    ["upper-case prefix", good.replace(/^lk/, "LK"), "shape"],
    ["non-base62 character", `${good.slice(0, 20)}-${good.slice(21)}`, "shape"],
    ["whitespace", ` ${good}`, "shape"],
    ["trailing newline", `${good}\n`, "shape"],
    ["non-ASCII", `${good.slice(0, 20)}é${good.slice(21)}`, "shape"],
    ["NUL byte", `${good.slice(0, 20)}\u0000${good.slice(21)}`, "shape"],
  ];
  for (const [name, input, reason] of cases) {
    it(name, () => expect(parseToken(input)).toEqual({ ok: false, reason }));
  }
  it("another deployment's prefix when one is expected", () => {
    expect(parseToken(good, "og")).toEqual({ ok: false, reason: "prefix" });
  });
});

describe("TOKEN_PATTERN and findTokens", () => {
  it("match every issued key", () => {
    for (let i = 0; i < 200; i++) {
      const token = generateToken({ prefix: i % 2 ? "lk" : "oag", environment: i % 3 ? "live" : "test" });
      expect(TOKEN_PATTERN.test(token)).toBe(true);
      expect(findTokens(`Authorization: Bearer ${token}\n`)).toEqual([token]);
    }
  });

  it("find nothing in a corpus of random strings, including token-shaped ones", () => {
    const corpus: string[] = [];
    for (let i = 0; i < 5000; i++) {
      corpus.push(randomBytes(64).toString("base64"));
      let body = "";
      for (let j = 0; j < SECRET_LENGTH + CHECKSUM_LENGTH; j++)
        body += BASE62_ALPHABET[(Math.random() * 62) | 0];
      corpus.push(`lk_live_${body}`);
    }
    expect(findTokens(corpus.join(" "))).toEqual([]);
  });

  it("do not match inside a longer word", () => {
    const token = generateToken({ prefix: "lk", environment: "live" });
    expect(findTokens(`x${token}`)).toEqual([]);
    expect(findTokens(`${token}9`)).toEqual([]);
  });
});

describe("hashToken and tokenHint", () => {
  it("hash is 32 bytes and stable", () => {
    const token = generateToken({ prefix: "lk", environment: "test" });
    expect(hashToken(token)).toHaveLength(32);
    expect(hashToken(token).equals(hashToken(token))).toBe(true);
  });
  it("hint reveals only prefix, environment and last four", () => {
    const token = generateToken({ prefix: "lk", environment: "live" });
    expect(tokenHint(token)).toBe(`lk_live_…${token.slice(-4)}`);
    expect(tokenHint("garbage")).toBe("…");
  });
  it("encodeBase62Fixed pads and bounds", () => {
    expect(encodeBase62Fixed(0, 6)).toBe("000000");
    expect(encodeBase62Fixed(0xffffffff, 6)).toHaveLength(6);
    expect(() => encodeBase62Fixed(62 ** 2, 2)).toThrow();
  });
});
