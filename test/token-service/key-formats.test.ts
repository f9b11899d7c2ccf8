// Named key formats with the real token-service on PostgreSQL: each format issued and verified, a
// team's own format, forged and altered signed keys refused before any lookup, a signed key revoked
// by id, signing keys rotated and ended, a foreign format refused, and bad format config refused
// with the setting's name.
import { Code } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConfigError } from "@latchkey/config";
import { VerifyResult } from "@latchkey/proto";
import { createKeyFormats } from "@latchkey/token";
import { createVerifier } from "@latchkey/verifier";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadTokenServiceConfig } from "../../services/token-service/src/config.js";
import { rowLookups, sample, scrape } from "./scrape-metrics.js";
import { claimsOf, withClaims } from "./signed-tokens.js";
import { startTestService, type TestService } from "./start.js";

const FORMATS = [
  { name: "latchkey", kind: "latchkey", prefix: "lk" },
  { name: "og", kind: "base64url", prefix: "og_", minLength: 32, maxLength: 128 },
  { name: "og-live", kind: "base64url", prefix: "og_live_" },
  { name: "oag", kind: "hex", prefix: "oag_", length: 32 },
  { name: "oai", kind: "signed", prefix: "oai_" },
];
const K1 = Buffer.alloc(32, 1).toString("base64url");
const K2 = Buffer.alloc(32, 2).toString("base64url");
const settings = (signingKeys: unknown[]) => ({
  metricsListen: "127.0.0.1:0",
  keyFormats: JSON.stringify(FORMATS),
  keySigningKeys: JSON.stringify(signingKeys),
});

describe("key formats at the token-service", () => {
  let service: TestService;
  let teamId: string;
  beforeAll(async () => {
    service = await startTestService({ settings: settings([{ kid: "k1", secret: K1, active: true }]) });
    ({ teamId } = await service.teamWithAdmin("formats"));
  });
  afterAll(async () => {
    await service?.close();
  });
  const verify = (token: string) => service.tokens(null).verify({ token });
  const lookups = () => rowLookups(service.handle.metricsPort ?? 0);

  it("issues and verifies a key of every format, and says which format it is", async () => {
    const shapes: Record<string, RegExp> = {
      latchkey: /^lk_live_[0-9A-Za-z]{49}$/,
      og: /^og_[A-Za-z0-9_-]{43}$/,
      "og-live": /^og_live_[A-Za-z0-9_-]{43}$/,
      oag: /^oag_[0-9a-f]{32}$/,
      oai: /^oai_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/,
    };
    for (const [format, shape] of Object.entries(shapes)) {
      const { token, key } = await service
        .tokens()
        .issue({ teamId, name: `k-${format}`, scopes: ["read"], format });
      expect(token, format).toMatch(shape);
      expect(key?.format).toBe(format);
      expect(
        key?.hint.startsWith(
          format === "latchkey" ? "lk_live_…" : `${FORMATS.find((f) => f.name === format)?.prefix}…`,
        ),
      ).toBe(true);
      const answer = await verify(token);
      expect(answer.result, format).toBe(VerifyResult.VALID);
      expect(answer.key?.format).toBe(format);
      const { rows } = await service.sql.query("select format from api_keys where id = $1", [key?.id]);
      expect(rows[0]?.format).toBe(format);
    }
  });

  it("issues in the team's format unless Issue names one, and rotates into the team's format", async () => {
    const { team } = await service.teams().createTeam({ name: "opengateway", keyFormat: "og-live" });
    expect(team?.keyFormat).toBe("og-live");
    const tokens = service.tokens();
    const first = await tokens.issue({ teamId: team?.id ?? "", name: "prod-chat-worker", scopes: ["read"] });
    expect(first.token.startsWith("og_live_")).toBe(true);
    const hex = await tokens.issue({ teamId: team?.id ?? "", name: "agent", format: "oag" });
    expect(hex.token).toMatch(/^oag_[0-9a-f]{32}$/);
    const rotated = await tokens.rotate({ keyId: hex.key?.id ?? "" });
    expect(rotated.token.startsWith("og_live_")).toBe(true);
    expect((await verify(rotated.token)).result).toBe(VerifyResult.VALID);
  });

  it("refuses an unknown format in Issue and CreateTeam, naming the field", async () => {
    const issue = service.tokens().issue({ teamId, name: "x", format: "ghp" });
    await expect(issue).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(issue).rejects.toThrow(/format: names no configured key format \(configured: latchkey, og/);
    const team = service.teams().createTeam({ name: "bad-format", keyFormat: "nope" });
    await expect(team).rejects.toThrow(/key_format: names no configured key format/);
  });

  it("refuses a foreign or garbled key as MALFORMED without a lookup", async () => {
    const before = await lookups();
    for (const [token, reason] of [
      [`ghp_${"a".repeat(36)}`, "no_format"],
      [`sk_live_${"a".repeat(40)}`, "no_format"],
      [`oag_${"a".repeat(31)}`, "shape"],
      [`oag_${"A".repeat(32)}`, "shape"],
      [`og_live_${"a".repeat(20)}!`, "shape"],
    ] as const) {
      const answer = await verify(token);
      expect(answer.result, token).toBe(VerifyResult.MALFORMED);
      expect(answer.reason, token).toBe(reason);
    }
    expect(await lookups()).toBe(before);
  });

  it("refuses a forged or altered signed key before any lookup", async () => {
    const { token } = await service
      .tokens()
      .issue({ teamId, name: "signed", scopes: ["read"], format: "oai" });
    const altered = withClaims(token, (claims) => ({ ...claims, scopes: ["admin"] }));
    const flipped = `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`;
    const unknownKid = withClaims(token, (claims) => ({ ...claims, kid: "k9" }));
    const before = await lookups();
    expect(await verify(altered)).toMatchObject({ result: VerifyResult.MALFORMED, reason: "signature" });
    expect(await verify(flipped)).toMatchObject({ result: VerifyResult.MALFORMED });
    expect(await verify(unknownKid)).toMatchObject({
      result: VerifyResult.MALFORMED,
      reason: "unknown_signing_key",
    });
    expect(await lookups()).toBe(before);
    // The genuine key needs its lookup (revocation is checked by id and hash).
    expect((await verify(token)).result).toBe(VerifyResult.VALID);
    expect(await lookups()).toBe(before + 1);
  });

  it("a signed key carries its id, team, scopes and expiry, and is revocable by id", async () => {
    const expireTime = { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 };
    const { token, key } = await service
      .tokens()
      .issue({ teamId, name: "signed-revoked", scopes: ["read", "chats:write"], format: "oai", expireTime });
    const claims = claimsOf(token);
    expect(claims).toMatchObject({ kid: "k1", id: key?.id, team: teamId, scopes: ["read", "chats:write"] });
    expect(claims.exp).toBe(Number(expireTime.seconds));
    expect((await verify(token)).result).toBe(VerifyResult.VALID);
    await service.tokens().revoke({ keyId: key?.id ?? "", reason: "leaked" });
    expect((await verify(token)).result).toBe(VerifyResult.REVOKED);
  });

  it("the verifier SDK accepts every configured format and refuses others with no RPC", async () => {
    const verifier = createVerifier({
      transport: createGrpcTransport({ baseUrl: service.grpcUrl }),
      formats: createKeyFormats({ formats: FORMATS }),
    });
    try {
      for (const format of ["og-live", "oag", "oai"]) {
        const { token } = await service.tokens().issue({ teamId, name: `sdk-${format}`, format });
        expect((await verifier.verify(token)).code, format).toBe("VALID");
      }
      const before = await lookups();
      expect(verifier.verifyCached(`ghp_${"a".repeat(36)}`)?.code).toBe("MALFORMED");
      expect((await verifier.verify(`oag_${"z".repeat(32)}`)).code).toBe("MALFORMED");
      expect(await lookups()).toBe(before);
    } finally {
      await verifier.close();
    }
  });
});

describe("signing keys rotate by kid", () => {
  it("a retired key verifies until its end, then its keys are refused as EXPIRED with the reason", async () => {
    const first = await startTestService({ settings: settings([{ kid: "k1", secret: K1, active: true }]) });
    const { databaseUrl } = first;
    let oldToken: string;
    let teamId: string;
    try {
      ({ teamId } = await first.teamWithAdmin("rotation"));
      ({ token: oldToken } = await first.tokens().issue({ teamId, name: "old", format: "oai" }));
    } finally {
      await first.close();
    }
    // k2 signs now; k1 still verifies until its stated end, 20 s from now.
    const k1End = Date.now() + 20_000;
    const inWindow = await startTestService({
      databaseUrl,
      settings: settings([
        { kid: "k2", secret: K2, active: true },
        { kid: "k1", secret: K1, notAfter: new Date(k1End).toISOString() },
      ]),
    });
    let newToken: string;
    try {
      const verify = (token: string) => inWindow.tokens(null).verify({ token });
      expect((await verify(oldToken)).result).toBe(VerifyResult.VALID); // now in the row cache
      ({ token: newToken } = await inWindow.tokens().issue({ teamId, name: "new", format: "oai" }));
      expect(claimsOf(newToken).kid).toBe("k2");
      // Past k1's end (the clock moved on, not the row cache's 30 s TTL): the cached row is refused too.
      const hits = async () =>
        sample(
          await scrape(inWindow.handle.metricsPort ?? 0),
          "latchkey_token_service_row_cache_lookups_total",
          {
            outcome: "hit",
          },
        ) ?? 0;
      const hitsBefore = await hits();
      const realNow = Date.now.bind(Date);
      const skew = k1End + 1_000 - realNow();
      const clock = vi.spyOn(Date, "now").mockImplementation(() => realNow() + skew);
      try {
        expect(await verify(oldToken)).toMatchObject({
          result: VerifyResult.EXPIRED,
          reason: "signing_key_expired",
        });
        expect((await verify(newToken)).result).toBe(VerifyResult.VALID);
      } finally {
        clock.mockRestore();
      }
      expect(await hits()).toBeGreaterThan(hitsBefore);
    } finally {
      await inWindow.close();
    }
    // Restarted after k1's end: its keys are refused at the parse, before any lookup.
    const ended = await startTestService({
      databaseUrl,
      settings: settings([
        { kid: "k2", secret: K2, active: true },
        { kid: "k1", secret: K1, notAfter: new Date(Date.now() - 1000).toISOString() },
      ]),
    });
    try {
      const answer = await ended.tokens(null).verify({ token: oldToken });
      expect(answer).toMatchObject({ result: VerifyResult.EXPIRED, reason: "signing_key_expired" });
      expect((await ended.tokens(null).verify({ token: newToken })).result).toBe(VerifyResult.VALID);
    } finally {
      await ended.close();
    }
  });
});

describe("bad key format config stops start-up naming the setting", () => {
  const load = (env: Record<string, string>) => () => loadTokenServiceConfig(env);
  it.each([
    [{ LATCHKEY_KEY_FORMATS: "not json" }, /LATCHKEY_KEY_FORMATS: must be JSON/],
    [
      { LATCHKEY_KEY_FORMATS: '[{"name":"a","kind":"hex","prefix":"a_","length":7}]' },
      /LATCHKEY_KEY_FORMATS: \[0\]\.length/,
    ],
    [
      { LATCHKEY_KEY_FORMATS: '[{"name":"s","kind":"signed","prefix":"s_"}]' },
      /LATCHKEY_KEY_SIGNING_KEYS: a signed key format needs signing keys/,
    ],
    [{ LATCHKEY_KEY_FORMAT: "oag" }, /LATCHKEY_KEY_FORMAT: names no configured format: oag/],
    [
      { LATCHKEY_KEY_FORMATS: '[{"name":"h","kind":"hex","prefix":"h_","length":16}]' },
      /LATCHKEY_KEY_FORMATS: format h carries 64 bits/,
    ],
    [
      {
        LATCHKEY_KEY_FORMATS: '[{"name":"s","kind":"signed","prefix":"s_"}]',
        LATCHKEY_KEY_SIGNING_KEYS: '[{"kid":"a","secret":"c2hvcnQ","active":true}]',
      },
      /LATCHKEY_KEY_SIGNING_KEYS: \[0\]\.secret must be 32/,
    ],
    [
      {
        LATCHKEY_KEY_FORMATS: '[{"name":"oai","kind":"signed","prefix":"oai_","legacyKid":"ogarni"}]',
        LATCHKEY_KEY_SIGNING_KEYS: JSON.stringify([{ kid: "k1", secret: K1, active: true }]),
      },
      /LATCHKEY_KEY_SIGNING_KEYS: format oai \(keyFormats\[0\]\) has legacyKid ogarni, which names no signing key/,
    ],
  ])("%o", (env, message) => {
    expect(load(env)).toThrow(ConfigError);
    expect(load(env)).toThrow(message);
  });

  it("a format that does not issue may still be accepted when another issues", () => {
    const config = loadTokenServiceConfig({
      LATCHKEY_KEY_FORMATS: JSON.stringify([
        { name: "latchkey", kind: "latchkey", prefix: "lk" },
        { name: "legacy", kind: "hex", prefix: "lg_", length: 16 },
      ]),
    });
    expect(config.keyFormats?.map((format) => format.name)).toEqual(["latchkey", "legacy"]);
  });

  it("an empty list is refused", () => {
    expect(load({ LATCHKEY_KEY_FORMATS: "[]" })).toThrow(
      /LATCHKEY_KEY_FORMATS: must list at least one format/,
    );
  });
});
