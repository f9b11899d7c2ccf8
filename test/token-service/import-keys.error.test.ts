// ImportKeys' bad input beyond one field (issue 11's list): a hash given twice or held by another key,
// a key of a format the deployment does not accept, a forged signature, a key whose signing key has
// ended, a bad owner. Each is named with its field, and the batch it came in writes nothing at all.
import { createHash, randomBytes } from "node:crypto";
import { ImportRowStatus, VerifyResult } from "@latchkey/proto";
import { generateToken, signClaims, validateSigningKeys } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ImportRowInit, importRow, sha256Hex, writtenCounts } from "./import-rows.js";
import { legacySignedToken, withClaims } from "./signed-tokens.js";
import { startTestService, type TestService } from "./start.js";

const NEW_SECRET = Buffer.alloc(32, 11).toString("base64url");
const OLD_SECRET = Buffer.alloc(32, 12).toString("base64url");
const LEGACY_SECRET = Buffer.alloc(32, 13);
const SIGNING_KEYS = [
  { kid: "k-new", secret: NEW_SECRET, active: true },
  // Retired, and past its end: keys it signed are refused.
  { kid: "k-old", secret: OLD_SECRET, notAfter: "2025-01-01T00:00:00Z" },
  // Seed 001's own secret: its tokens carry the old system's claims.
  { kid: "ogarni", secret: LEGACY_SECRET.toString("base64url") },
];
const FORMATS = [
  { name: "latchkey", kind: "latchkey", prefix: "lk" },
  { name: "oag", kind: "hex", prefix: "oag_", length: 32 },
  { name: "oai", kind: "signed", prefix: "oai_", legacyKid: "ogarni" },
];

let service: TestService;
let teamId: string;
const row = (init: ImportRowInit) => importRow(teamId, init);
const oag = () => `oag_${randomBytes(16).toString("hex")}`;

/** A signed key with Latchkey's claims, signed by `spec` (whatever its end). */
function signedBy(spec: { kid: string; secret: string }, scopes: string[]): string {
  const [key] = validateSigningKeys([{ ...spec, active: true }], 0);
  if (key === undefined) throw new Error("no signing key");
  return `oai_${signClaims(key, { keyId: "key_x", teamId, scopes, environment: "live" })}`;
}

/** Imports `bad` beside a good row; expects only `bad` rejected with `message`, and nothing written. */
async function refusedAlone(bad: ImportRowInit, message: string | RegExp, code = "invalid_argument") {
  const good = generateToken({ prefix: "lk", environment: "live" });
  const before = await writtenCounts(service.sql);
  const response = await service.tokens().importKeys({
    keys: [row({ externalId: "the-good-one", token: good }), row({ externalId: "the-bad-one", ...bad })],
  });
  expect(response).toMatchObject({ committed: false, imported: 0, rejected: 1 });
  expect(response.results[0]?.status).toBe(ImportRowStatus.NOT_WRITTEN);
  expect(response.results[1]).toMatchObject({ status: ImportRowStatus.REJECTED, errorCode: code });
  if (typeof message === "string") expect(response.results[1]?.error).toBe(message);
  else expect(response.results[1]?.error).toMatch(message);
  expect(await writtenCounts(service.sql)).toEqual(before);
  expect((await service.tokens().verify({ token: good })).result).toBe(VerifyResult.NOT_FOUND);
}

beforeAll(async () => {
  service = await startTestService({
    settings: { keyFormats: JSON.stringify(FORMATS), keySigningKeys: JSON.stringify(SIGNING_KEYS) },
  });
  teamId = (await service.teams().createTeam({ name: "import-errors" })).team?.id ?? "";
});
afterAll(() => service?.close());

describe("ImportKeys refuses, naming the field, and writes nothing of the batch", () => {
  it("the same hash twice in a batch, whatever its encoding", async () => {
    const digest = createHash("sha256").update(oag()).digest();
    const before = await writtenCounts(service.sql);
    const response = await service.tokens().importKeys({
      keys: [
        row({ externalId: "h-hex", format: "oag", sha256: digest.toString("hex") }),
        row({ externalId: "h-b64", format: "oag", sha256: digest.toString("base64") }),
        row({ externalId: "h-b64url", format: "oag", sha256: digest.toString("base64url") }),
      ],
    });
    expect(response.results.map((result) => [result.status, result.error])).toEqual([
      [ImportRowStatus.NOT_WRITTEN, ""],
      [ImportRowStatus.REJECTED, "token_sha256: the same as key 0 of this batch (a key is imported once)"],
      [ImportRowStatus.REJECTED, "token_sha256: the same as key 0 of this batch (a key is imported once)"],
    ]);
    expect(await writtenCounts(service.sql)).toEqual(before);
  });

  it("a plaintext and the hash of the same token in one batch", async () => {
    const token = oag();
    const response = await service.tokens().importKeys({
      keys: [
        row({ externalId: "p-plain", token }),
        row({ externalId: "p-hash", format: "oag", sha256: sha256Hex(token) }),
      ],
    });
    expect(response.committed).toBe(false);
    expect(response.results[1]?.error).toBe(
      "token_sha256: the same as key 0 of this batch (a key is imported once)",
    );
  });

  it("a hash that an issued key's token already has", async () => {
    const issued = await service.tokens().issue({ teamId, name: "held", format: "oag" });
    await refusedAlone(
      { format: "oag", sha256: sha256Hex(issued.token) },
      `token_sha256: another key already has this token (${issued.key?.id})`,
      "already_exists",
    );
  });

  it("a token of no accepted format, or not of the format the row names", async () => {
    await refusedAlone(
      { token: `ghp_${"a".repeat(36)}` },
      "token: does not match any of this deployment's key formats (no_format)",
    );
    await refusedAlone(
      { token: `og_live_${"a".repeat(43)}` },
      "token: does not match any of this deployment's key formats (no_format)",
    );
    await refusedAlone(
      { format: "oai", token: oag() },
      "token: does not match the format oai (another format)",
    );
    await refusedAlone(
      { format: "og-live", sha256: sha256Hex("x") },
      "format: must be one of this deployment's key formats: latchkey, oag, oai",
    );
  });

  it("a forged or altered signed key, and one signed by an unknown kid", async () => {
    const { token } = await service
      .tokens()
      .issue({ teamId, name: "signed", scopes: ["read"], format: "oai" });
    await refusedAlone(
      { token: withClaims(token, (claims) => ({ ...claims, scopes: ["admin"] })) },
      "token: does not match any of this deployment's key formats (signature)",
    );
    const minted = signedBy({ kid: "k-new", secret: Buffer.alloc(32, 99).toString("base64url") }, ["admin"]);
    await refusedAlone({ token: minted }, /\(signature\)$/);
    await refusedAlone(
      { token: withClaims(token, (claims) => ({ ...claims, kid: "k-none" })) },
      /\(unknown_signing_key\)$/,
    );
  });

  it("a key whose signing key has ended, and an old system's token under another secret", async () => {
    const ended = signedBy({ kid: "k-old", secret: OLD_SECRET }, ["read"]);
    await refusedAlone(
      { token: ended },
      "token: does not match any of this deployment's key formats (signing_key_expired)",
    );
    const forged = legacySignedToken({ sub: "1234567890", scope: "read" }, Buffer.alloc(32, 1));
    await refusedAlone({ token: forged }, /\(signature\)$/);
  });

  it("an owner that is no external id", async () => {
    await refusedAlone({ owner: "agents/7" }, /^owner: must be 1–128 of/);
    await refusedAlone({ owner: "agent-7." }, /^owner: /);
  });
});

describe("ImportKeys with the old system's signed keys and owners", () => {
  it("imports a token the old system signed, tied to its signing key, with its owner", async () => {
    const token = legacySignedToken({ sub: "1234567890", scope: "write" }, LEGACY_SECRET);
    const response = await service.tokens().importKeys({
      keys: [row({ externalId: "tok_1", token, scopes: ["write"], owner: "user-1234567890" })],
    });
    expect(response.committed).toBe(true);
    const verified = await service.tokens().verify({ token });
    expect(verified.result).toBe(VerifyResult.VALID);
    expect(verified.key).toMatchObject({ format: "oai", owner: "user-1234567890", scopes: ["write"] });
    const { rows } = await service.sql.query("select signing_kid from api_keys where external_id = 'tok_1'");
    expect(rows[0].signing_kid).toBe("ogarni");
    const again = await service.tokens().importKeys({
      keys: [row({ externalId: "tok_1", token, scopes: ["write"], owner: "user-1234567890" })],
    });
    expect(again.alreadyImported).toBe(1);
    const changed = await service.tokens().importKeys({
      keys: [row({ externalId: "tok_1", token, scopes: ["write"], owner: "someone-else" })],
    });
    expect(changed.results[0]?.errorCode).toBe("already_exists");
  });
});
