import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { KeyFormatConfigError } from "./key-format.js";
import { createKeyFormats, generateTokenWith, parseTokenWith } from "./key-formats.js";
import { findTokensWith } from "./token-scanner.js";

// Seed 001's tokens before the move: `oai_` + base64url JSON of the old system's own claims, a ".",
// and HMAC-SHA256 of that payload under the old system's secret.
const OLD_SECRET = Buffer.alloc(32, 3);
const NEW_SECRET = Buffer.alloc(32, 4).toString("base64url");
const OAI = { name: "oai", kind: "signed", prefix: "oai_", legacyKid: "ogarni" };
const SIGNING_KEYS = [
  { kid: "2026-12", secret: NEW_SECRET, active: true },
  { kid: "ogarni", secret: OLD_SECRET.toString("base64url"), notAfter: "2100-01-01T00:00:00Z" },
];
const formats = createKeyFormats({ formats: [OAI], signingKeys: SIGNING_KEYS });

function oldToken(claims: object, secret = OLD_SECRET): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  return `oai_${payload}.${createHmac("sha256", secret).update(payload).digest("base64url")}`;
}
const legacy = oldToken({ sub: "1234567890", scope: "read", iat: 1735689600 });

describe("a signed format with legacyKid", () => {
  it("accepts the old system's token by its signature, without reading its payload", () => {
    expect(parseTokenWith(formats, legacy)).toEqual({
      ok: true,
      format: formats.byName("oai"),
      signingKid: "ogarni",
    });
  });

  it("still reads Latchkey's own signed keys, signed by their own kid", () => {
    const token = generateTokenWith(formats, "oai", {
      environment: "live",
      claims: { keyId: "key_a", teamId: "team_b", scopes: ["read"] },
    });
    expect(parseTokenWith(formats, token)).toMatchObject({
      ok: true,
      signingKid: "2026-12",
      claims: { keyId: "key_a" },
    });
  });

  it("refuses an altered payload, another secret, and a token past the old key's end", () => {
    const [payload = "", signature = ""] = legacy.slice(4).split(".");
    const widened = Buffer.from(JSON.stringify({ sub: "1234567890", scope: "admin" })).toString("base64url");
    expect(parseTokenWith(formats, `oai_${widened}.${signature}`)).toMatchObject({
      ok: false,
      reason: "signature",
    });
    expect(parseTokenWith(formats, oldToken({ sub: "1" }, Buffer.alloc(32, 9)))).toMatchObject({
      ok: false,
      reason: "signature",
    });
    expect(parseTokenWith(formats, `oai_${payload}=.${signature}`)).toMatchObject({
      ok: false,
      reason: "claims",
    });
    const ended = createKeyFormats({
      formats: [OAI],
      signingKeys: [SIGNING_KEYS[0], { ...SIGNING_KEYS[1], notAfter: "2020-01-01T00:00:00Z" }],
    });
    expect(parseTokenWith(ended, legacy)).toMatchObject({ ok: false, reason: "signing_key_expired" });
  });

  it("a format without legacyKid refuses the old token by its claims", () => {
    const strict = createKeyFormats({
      formats: [{ ...OAI, legacyKid: undefined }],
      signingKeys: SIGNING_KEYS,
    });
    expect(parseTokenWith(strict, legacy)).toMatchObject({ ok: false, reason: "claims" });
  });

  it("where no signing keys are held (a sidecar), checks the shape only, and scanners find the old tokens", () => {
    const edge = createKeyFormats({ formats: [OAI] });
    expect(parseTokenWith(edge, legacy)).toMatchObject({ ok: true, signingKid: "ogarni" });
    expect(parseTokenWith(edge, `oai_not base64.${"a".repeat(43)}`)).toMatchObject({ ok: false });
    expect(parseTokenWith(edge, `oai_abc.${"a".repeat(42)}`)).toMatchObject({ ok: false, reason: "shape" });
    expect(findTokensWith(edge, `OGARNIAI_API_TOKEN="${legacy}"`)).toEqual([legacy]);
  });

  it("is refused in config when it names no signing key, has a bad kid, or sits on another kind", () => {
    const build =
      (format: object, signingKeys: unknown = SIGNING_KEYS) =>
      () =>
        createKeyFormats({ formats: [format], signingKeys });
    expect(build({ ...OAI, legacyKid: "nobody" })).toThrow(/\[0\]\.legacyKid nobody names no signing key/);
    expect(build({ ...OAI, legacyKid: "a b" })).toThrow(/\[0\]\.legacyKid must be a signing key's kid/);
    expect(build({ name: "h", kind: "hex", prefix: "h_", legacyKid: "ogarni" })).toThrow(
      /\[0\]\.legacyKid does not apply to kind hex/,
    );
    expect(build({ ...OAI, legacyKid: "nobody" })).toThrow(KeyFormatConfigError);
  });
});
