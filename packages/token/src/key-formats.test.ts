import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KeyFormatConfigError } from "./key-format.js";
import { createKeyFormats, generateTokenWith, parseTokenWith } from "./key-formats.js";
import { findTokensWith, tokenPatternFor } from "./token-scanner.js";

const SECRET_A = Buffer.alloc(32, 7).toString("base64url");
const SECRET_B = Buffer.alloc(32, 9).toString("base64url");

/** Every seed's format plus today's. */
export const SEED_FORMAT_SPECS = [
  { name: "latchkey", kind: "latchkey", prefix: "lk" },
  { name: "og", kind: "base64url", prefix: "og_", minLength: 32, maxLength: 64 },
  { name: "og-live", kind: "base64url", prefix: "og_live_" },
  { name: "oag", kind: "hex", prefix: "oag_", length: 32 },
  { name: "oai", kind: "signed", prefix: "oai_" },
];

const formats = createKeyFormats({
  formats: SEED_FORMAT_SPECS,
  signingKeys: [
    { kid: "k2", secret: SECRET_B, active: true },
    { kid: "k1", secret: SECRET_A, notAfter: "2100-01-01T00:00:00Z" },
  ],
});
const claims = { keyId: "key_abc", teamId: "team_xyz", scopes: ["read", "chats:write"] };
const issue = (name: string) => generateTokenWith(formats, name, { environment: "live", claims });

describe("parseTokenWith", () => {
  it("accepts a generated key of every format and names the format", () => {
    for (const name of ["latchkey", "og", "og-live", "oag", "oai"]) {
      const outcome = parseTokenWith(formats, issue(name));
      expect(outcome.ok && outcome.format.name).toBe(name);
    }
  });

  it("accepts the seeds' documented shapes", () => {
    expect(parseTokenWith(formats, "oag_a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4")).toMatchObject({
      ok: true,
      format: { name: "oag" },
    });
    expect(parseTokenWith(formats, `og_${"a1B2c3D4e5F6-_".repeat(3)}`)).toMatchObject({ ok: true });
  });

  it("prefers the longest prefix: og_live_ before og_", () => {
    const token = issue("og-live");
    expect(parseTokenWith(formats, token)).toMatchObject({ ok: true, format: { name: "og-live" } });
  });

  it("reads a signed key's claims", () => {
    const outcome = parseTokenWith(formats, issue("oai"));
    expect(outcome).toMatchObject({
      ok: true,
      claims: { kid: "k2", keyId: "key_abc", teamId: "team_xyz", scopes: ["read", "chats:write"] },
    });
  });

  const cases: Array<[string, string, string]> = [
    ["empty", "", "empty"],
    ["too long", `oag_${"a".repeat(600)}`, "too_long"],
    ["a foreign prefix", `ghp_${"a".repeat(36)}`, "no_format"],
    ["hex too short", `oag_${"a".repeat(31)}`, "shape"],
    ["hex too long", `oag_${"a".repeat(33)}`, "shape"],
    ["upper-case hex", `oag_${"A".repeat(32)}`, "shape"],
    ["base64url too short", `og_${"a".repeat(31)}`, "shape"],
    ["base64url with padding", `og_${"a".repeat(40)}=`, "shape"],
    ["a space", `og_${"a".repeat(20)} ${"a".repeat(20)}`, "shape"],
    ["non-ASCII", `og_${"a".repeat(20)}é${"a".repeat(20)}`, "shape"],
    ["a NUL byte", `oag_${"a".repeat(16)}\u0000${"a".repeat(15)}`, "shape"],
    ["a trailing newline", `oag_${"a".repeat(32)}\n`, "shape"],
  ];
  for (const [name, token, reason] of cases) {
    it(`refuses ${name}`, () => expect(parseTokenWith(formats, token)).toMatchObject({ ok: false, reason }));
  }

  it("refuses a latchkey key with a typo by its checksum", () => {
    const token = issue("latchkey");
    const typo = token.slice(0, 12) + (token[12] === "a" ? "b" : "a") + token.slice(13);
    expect(parseTokenWith(formats, typo)).toMatchObject({ ok: false, reason: "checksum" });
  });
});

describe("signed keys", () => {
  const token = issue("oai");
  const [payload = "", signature = ""] = token.slice(4).split(".");

  it("refuses an altered payload (scopes widened) by its signature", () => {
    const forged = JSON.parse(Buffer.from(payload, "base64url").toString());
    forged.scopes = ["admin"];
    const altered = `oai_${Buffer.from(JSON.stringify(forged)).toString("base64url")}.${signature}`;
    expect(parseTokenWith(formats, altered)).toMatchObject({ ok: false, reason: "signature" });
  });

  it("refuses a signature made with another secret", () => {
    const other = createKeyFormats({
      formats: SEED_FORMAT_SPECS,
      signingKeys: [{ kid: "k2", secret: Buffer.alloc(32, 1).toString("base64url"), active: true }],
    });
    const foreign = generateTokenWith(other, "oai", { environment: "live", claims });
    expect(parseTokenWith(formats, foreign)).toMatchObject({ ok: false, reason: "signature" });
  });

  it("refuses an unknown kid, a retired key past its end, and an expired token", () => {
    const unknown = createKeyFormats({
      formats: SEED_FORMAT_SPECS,
      signingKeys: [{ kid: "k9", secret: SECRET_A, active: true }],
    });
    expect(
      parseTokenWith(formats, generateTokenWith(unknown, "oai", { environment: "live", claims })),
    ).toMatchObject({ ok: false, reason: "unknown_signing_key" });
    const signedByK1 = generateTokenWith(
      createKeyFormats({
        formats: SEED_FORMAT_SPECS,
        signingKeys: [{ kid: "k1", secret: SECRET_A, active: true }],
      }),
      "oai",
      { environment: "test", claims: { ...claims, expiresAt: Date.parse("2200-01-01T00:00:00Z") } },
    );
    expect(parseTokenWith(formats, signedByK1)).toMatchObject({ ok: true, environment: "test" });
    expect(parseTokenWith(formats, signedByK1, Date.parse("2100-01-01T00:00:01Z"))).toMatchObject({
      ok: false,
      reason: "signing_key_expired",
    });
    expect(parseTokenWith(formats, signedByK1, Date.parse("2200-01-01T00:00:01Z"))).toMatchObject({
      ok: false,
      reason: "signing_key_expired",
    });
    const expiring = generateTokenWith(formats, "oai", {
      environment: "live",
      claims: { ...claims, expiresAt: Date.now() + 1000 },
    });
    expect(parseTokenWith(formats, expiring, Date.now() + 5000)).toMatchObject({
      ok: false,
      reason: "expired",
    });
  });

  it("checks shape and claims only where no signing keys are held", () => {
    const edge = createKeyFormats({ formats: SEED_FORMAT_SPECS });
    expect(parseTokenWith(edge, token)).toMatchObject({ ok: true, format: { name: "oai" } });
    expect(parseTokenWith(edge, `oai_${payload}x.${signature}`)).toMatchObject({ ok: false });
    expect(parseTokenWith(edge, `oai_${Buffer.from("{}").toString("base64url")}.${signature}`)).toMatchObject(
      {
        ok: false,
        reason: "claims",
      },
    );
  });

  it("refuses junk JSON, extra claims and a second dot", () => {
    const b = (text: string) => `oai_${Buffer.from(text).toString("base64url")}.${signature}`;
    expect(parseTokenWith(formats, b("not json"))).toMatchObject({ ok: false, reason: "claims" });
    expect(parseTokenWith(formats, b("[1,2,3]"))).toMatchObject({ ok: false, reason: "claims" });
    const extra = { ...JSON.parse(Buffer.from(payload, "base64url").toString()), admin: true };
    expect(parseTokenWith(formats, b(JSON.stringify(extra)))).toMatchObject({ ok: false, reason: "claims" });
    expect(parseTokenWith(formats, `${token}.x`)).toMatchObject({ ok: false });
  });
});

describe("property: strict parsing", () => {
  it("every generated key parses as its own format, and any one-character change is refused or reformatted", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("latchkey", "og-live", "oag", "oai"),
        fc.nat(),
        fc.constantFrom(..."!#$%&()*+,/:;<=>?@[]^`{|}~ \t\né€\u0000"),
        (name, at, junk) => {
          const token = issue(name);
          expect(parseTokenWith(formats, token)).toMatchObject({ ok: true, format: { name } });
          const i = at % token.length;
          const mutated = token.slice(0, i) + junk + token.slice(i + 1);
          expect(parseTokenWith(formats, mutated).ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("arbitrary strings never throw and never pass as a signed or latchkey key", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 700 }), (text) => {
        for (const candidate of [text, `oai_${text}`, `lk_live_${text}`]) {
          const outcome = parseTokenWith(formats, candidate);
          if (outcome.ok) expect(["og", "og-live", "oag"]).toContain(outcome.format.name);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("an altered signature is always refused", () => {
    const token = issue("oai");
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 43 }), fc.constantFrom(..."AQgw_-09"), (back, c) => {
        const i = token.length - back;
        fc.pre(token[i] !== c);
        const altered = token.slice(0, i) + c + token.slice(i + 1);
        expect(parseTokenWith(formats, altered).ok).toBe(false);
      }),
    );
  });
});

describe("scanning", () => {
  it("finds a key of every format standing alone, and none inside a longer word", () => {
    for (const name of ["latchkey", "og", "og-live", "oag", "oai"]) {
      const token = issue(name);
      expect(findTokensWith(formats, `export KEY="${token}"\n`)).toEqual([token]);
      expect(tokenPatternFor(formats).test(token)).toBe(true);
      expect(findTokensWith(formats, `x${token}`)).toEqual([]);
    }
  });
});

describe("config validation names the entry", () => {
  const bad: Array<[unknown, RegExp]> = [
    [[], /at least one/],
    [[{ name: "a", kind: "hex", prefix: "oag" }], /\[0\]\.prefix/],
    [[{ name: "a", kind: "hex", prefix: "oag_", length: 8 }], /\[0\]\.length/],
    [[{ name: "a", kind: "rot13", prefix: "x_" }], /\[0\]\.kind/],
    [[{ name: "A", kind: "hex", prefix: "x_" }], /\[0\]\.name/],
    [[{ name: "a", kind: "latchkey", prefix: "lk_" }], /\[0\]\.prefix/],
    [[{ name: "a", kind: "hex", prefix: "x_", minLength: 3 }], /\[0\]\.minLength does not apply/],
    [[{ name: "a", kind: "hex", prefix: "x_", colour: 1 }], /\[0\]\.colour/],
    [
      [
        { name: "a", kind: "hex", prefix: "x_" },
        { name: "a", kind: "base64url", prefix: "y_" },
      ],
      /\[1\]\.name a is listed twice/,
    ],
    [[{ name: "a", kind: "base64url", prefix: "y_", minLength: 40, maxLength: 20 }], /\[0\]\.maxLength/],
  ];
  for (const [specs, message] of bad) {
    it(String(message), () => {
      expect(() => createKeyFormats({ formats: specs })).toThrow(KeyFormatConfigError);
      expect(() => createKeyFormats({ formats: specs })).toThrow(message);
    });
  }

  it("signing keys: short secret, no active key, two active, active past its end; never echoes the secret", () => {
    const f = [{ name: "s", kind: "signed", prefix: "s_" }];
    const short = "c2hvcnQ";
    expect(() =>
      createKeyFormats({ formats: f, signingKeys: [{ kid: "a", secret: short, active: true }] }),
    ).toThrow(/\[0\]\.secret must be 32/);
    try {
      createKeyFormats({ formats: f, signingKeys: [{ kid: "a", secret: short, active: true }] });
    } catch (error) {
      expect(String(error)).not.toContain(short);
    }
    expect(() => createKeyFormats({ formats: f, signingKeys: [{ kid: "a", secret: SECRET_A }] })).toThrow(
      /exactly one/,
    );
    expect(() =>
      createKeyFormats({
        formats: f,
        signingKeys: [
          { kid: "a", secret: SECRET_A, active: true },
          { kid: "b", secret: SECRET_B, active: true },
        ],
      }),
    ).toThrow(/exactly one/);
    expect(() =>
      createKeyFormats({
        formats: f,
        signingKeys: [{ kid: "a", secret: SECRET_A, active: true, notAfter: "2000-01-01T00:00:00Z" }],
      }),
    ).toThrow(/\[0\] is active but its notAfter has passed/);
  });

  it("refuses to issue a format carrying under 128 bits", () => {
    const short = createKeyFormats({ formats: [{ name: "h", kind: "hex", prefix: "h_", length: 16 }] });
    expect(() => generateTokenWith(short, "h", { environment: "live" })).toThrow(/128/);
  });
});
