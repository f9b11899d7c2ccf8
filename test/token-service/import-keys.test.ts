// ImportKeys against the real token-service on PostgreSQL: imported keys
// (plaintext or SHA-256 only) verify, revoke and rotate like issued ones; a
// batch is all or nothing; re-imports are no-ops; every bad row is named.
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { TimestampSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ImportRowStatus, KeyEventType, VerifyResult } from "@latchkey/proto";
import { generateToken } from "@latchkey/token";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ImportRowInit, importRow, sha256Hex, writtenCounts } from "./import-rows.js";
import { startTestService, type TestService } from "./start.js";

let service: TestService;
let teamId: string;

const row = (init: ImportRowInit) => importRow(teamId, init);

// The deployment accepts its own keys and seed 003's `oag_` + 32 hex (named `hex` here).
const KEY_FORMATS = JSON.stringify([
  { name: "latchkey", kind: "latchkey", prefix: "lk" },
  { name: "hex", kind: "hex", prefix: "oag_", length: 32 },
]);

beforeAll(async () => {
  service = await startTestService({ settings: { keyFormats: KEY_FORMATS } });
  const { team } = await service.teams().createTeam({ name: "importers" });
  teamId = team?.id ?? "";
});
afterAll(() => service?.close());

describe("ImportKeys", () => {
  it("imports plaintext and hash-only keys that then verify, revoke and rotate like issued ones", async () => {
    const plain = generateToken({ prefix: "lk", environment: "live" });
    const hashed = generateToken({ prefix: "lk", environment: "test" });
    const created = new Date("2024-03-01T10:00:00Z");
    const response = await service.tokens().importKeys({
      keys: [
        row({
          externalId: "ext-plain",
          token: plain,
          scopes: ["write"],
          createTime: timestampFromDate(created),
          lastUsedTime: timestampFromDate(new Date("2025-01-02T00:00:00Z")),
          metadata: { origin: "legacy" },
        }),
        row({
          externalId: "ext-hash",
          sha256: sha256Hex(hashed),
          environment: "test",
          hint: "lk_test_…abcd",
        }),
      ],
    });
    expect(response).toMatchObject({ committed: true, imported: 2, alreadyImported: 0, rejected: 0 });
    expect(response.results.map((r) => r.status)).toEqual([
      ImportRowStatus.IMPORTED,
      ImportRowStatus.IMPORTED,
    ]);

    const verified = await service.tokens().verify({ token: plain, requiredScopes: ["read"] });
    expect(verified.result).toBe(VerifyResult.VALID);
    expect(verified.key).toMatchObject({
      externalId: "ext-plain",
      format: "latchkey",
      scopes: ["write"],
      metadata: { origin: "legacy" },
      hint: `lk_live_…${plain.slice(-4)}`,
    });
    expect(verified.key?.createTime?.seconds).toBe(BigInt(created.getTime() / 1000));
    expect(verified.key?.importTime).toBeDefined();
    const hashOnly = await service.tokens().verify({ token: hashed });
    expect(hashOnly.result).toBe(VerifyResult.VALID);
    expect(hashOnly.key).toMatchObject({ environment: "test", hint: "lk_test_…abcd" });

    const rotated = await service
      .tokens()
      .rotate({ keyId: hashOnly.key?.id ?? "", gracePeriod: { seconds: 0n } });
    expect(rotated.token).toMatch(/^lk_test_/);
    expect((await service.tokens().verify({ token: rotated.token })).result).toBe(VerifyResult.VALID);
    expect(rotated.key).toMatchObject({ format: "latchkey", externalId: "", rotatedFrom: hashOnly.key?.id });

    await service.tokens().revoke({ keyId: verified.key?.id ?? "" });
    expect((await service.tokens().verify({ token: plain })).result).toBe(VerifyResult.REVOKED);
  });

  it("accepts the SHA-256 as hex, base64 and base64url", async () => {
    const tokens = [0, 1, 2].map(() => generateToken({ prefix: "lk", environment: "live" }));
    const digests = tokens.map((t) => createHash("sha256").update(t).digest());
    const response = await service.tokens().importKeys({
      keys: [
        row({ externalId: "enc-hex", sha256: digests[0]?.toString("hex").toUpperCase() ?? "" }),
        row({ externalId: "enc-b64", sha256: digests[1]?.toString("base64") ?? "" }),
        row({ externalId: "enc-b64url", sha256: digests[2]?.toString("base64url") ?? "" }),
      ],
    });
    expect(response.committed).toBe(true);
    for (const token of tokens) {
      expect((await service.tokens().verify({ token })).result).toBe(VerifyResult.VALID);
    }
  });

  it("is idempotent by external id: the same row again is ALREADY_IMPORTED, different content is rejected", async () => {
    const token = generateToken({ prefix: "lk", environment: "live" });
    const first = await service.tokens().importKeys({ keys: [row({ externalId: "again", token })] });
    const keyId = first.results[0]?.keyId;
    const second = await service.tokens().importKeys({ keys: [row({ externalId: "again", token })] });
    expect(second).toMatchObject({ committed: true, imported: 0, alreadyImported: 1 });
    expect(second.results[0]).toMatchObject({ status: ImportRowStatus.ALREADY_IMPORTED, keyId });
    const changed = await service
      .tokens()
      .importKeys({ keys: [row({ externalId: "again", token, name: "renamed" })] });
    expect(changed.committed).toBe(false);
    expect(changed.results[0]).toMatchObject({
      status: ImportRowStatus.REJECTED,
      errorCode: "already_exists",
    });
    expect(changed.results[0]?.error).toContain(
      `external_id: again was imported before with different content (key ${keyId})`,
    );
    const count = await service.sql.query(
      "select count(*)::int as n from api_keys where external_id = 'again'",
    );
    expect(count.rows[0].n).toBe(1);
  });

  it("writes nothing when one row of the batch is bad, and names every bad row", async () => {
    const existing = generateToken({ prefix: "lk", environment: "live" });
    await service.tokens().importKeys({ keys: [row({ externalId: "holder", token: existing })] });
    const good = generateToken({ prefix: "lk", environment: "live" });
    const twice = generateToken({ prefix: "lk", environment: "live" });
    const before = await counts();
    const response = await service.tokens().importKeys({
      keys: [
        row({ externalId: "good", token: good }),
        row({ externalId: "dup-1", token: twice }),
        row({ externalId: "dup-2", token: twice }),
        row({ externalId: "clash", token: existing }),
        row({ externalId: "bad-hash", sha256: "abc123" }),
        row({ externalId: "nobody", teamId: "team_0000000000000000000000" }),
        row({ externalId: "good", token: generateToken({ prefix: "lk", environment: "live" }) }),
      ],
    });
    expect(response).toMatchObject({ committed: false, imported: 0, rejected: 5 });
    const byId = response.results.map((r) => [r.externalId, r.status, r.error]);
    expect(byId).toEqual([
      ["good", ImportRowStatus.NOT_WRITTEN, ""],
      ["dup-1", ImportRowStatus.NOT_WRITTEN, ""],
      ["dup-2", ImportRowStatus.REJECTED, "token: the same as key 1 of this batch (a key is imported once)"],
      [
        "clash",
        ImportRowStatus.REJECTED,
        expect.stringMatching(/^token: another key already has this token \(key_/),
      ],
      ["bad-hash", ImportRowStatus.REJECTED, expect.stringContaining("token_sha256: must be a SHA-256")],
      ["nobody", ImportRowStatus.REJECTED, "team_id: team team_0000000000000000000000 not found"],
      [
        "good",
        ImportRowStatus.REJECTED,
        "external_id: the same as key 0 of this batch (a key is imported once)",
      ],
    ]);
    expect(await counts()).toEqual(before);
    expect((await service.tokens().verify({ token: good })).result).toBe(VerifyResult.NOT_FOUND);
  });

  it.each<[string, ImportRowInit, string]>([
    ["no external id", { externalId: "" }, "external_id: is required"],
    [
      "a control character in the external id",
      { externalId: "a\nb" },
      "external_id: must not contain control",
    ],
    ["no secret", { externalId: "x", sha256: "" }, "token_sha256: is required"],
    [
      "an unknown format",
      { externalId: "x", format: "pem" },
      "format: must be one of this deployment's key formats: latchkey, hex",
    ],
    [
      "a latchkey token failing its checksum",
      { externalId: "x", token: "lk_live_notARealToken" },
      "token: does not match any of this deployment's key formats (shape)",
    ],
    [
      "a latchkey token of another prefix",
      { externalId: "x", token: generateToken({ prefix: "og", environment: "live" }) },
      "token: does not match any of this deployment's key formats (no_format)",
    ],
    [
      "a token with spaces",
      { externalId: "x", format: "hex", token: "oag_ 12" },
      "token: must be printable ASCII",
    ],
    [
      "an environment the token contradicts",
      { externalId: "x", environment: "test" },
      "environment: must be the token's own (live)",
    ],
    [
      "an environment that is no label",
      { externalId: "x", environment: "Prod", format: "hex", token: "oag_00112233445566778899aabbccddeeff" },
      "environment: must be a lower-case letter",
    ],
    [
      "a creation in the future",
      { externalId: "x", createTime: timestampFromDate(new Date(Date.now() + 86_400_000)) },
      "create_time: must not be in the future",
    ],
    // PostgreSQL cannot store these: they reached it and failed the whole batch as INTERNAL.
    [
      "a creation before PostgreSQL's range",
      { externalId: "x", createTime: create(TimestampSchema, { seconds: -220_000_000_000n }) },
      "create_time: must be a time between 1970 and 9999",
    ],
    [
      "a last use before PostgreSQL's range",
      { externalId: "x", lastUsedTime: create(TimestampSchema, { seconds: -9_000_000_000_000_000n }) },
      "last_used_time: must be a time between 1970 and 9999",
    ],
    [
      "a creation with nanos out of range",
      {
        externalId: "x",
        createTime: create(TimestampSchema, { seconds: 1_700_000_000n, nanos: 2_000_000_000 }),
      },
      "create_time: must be a time between 1970 and 9999",
    ],
    [
      "a last use before creation",
      {
        externalId: "x",
        createTime: timestampFromDate(new Date("2024-01-02")),
        lastUsedTime: timestampFromDate(new Date("2024-01-01")),
      },
      "last_used_time: must not be before create_time",
    ],
    [
      "an expiry in the past",
      { externalId: "x", expireTime: timestampFromDate(new Date("2024-01-01")) },
      "expire_time: must be in the future",
    ],
    ["a bad scope", { externalId: "x", scopes: ["Bad Scope"] }, "scopes:"],
    ["a bad metadata key", { externalId: "x", metadata: { "bad key": "v" } }, "metadata: key"],
    [
      "a base64 hash of the wrong length",
      { externalId: "x", sha256: Buffer.alloc(31).toString("base64") },
      "token_sha256: must be a SHA-256",
    ],
  ])("rejects %s with a message naming the field", async (_, init, message) => {
    const response = await service.tokens().importKeys({ keys: [row(init)] });
    expect(response.committed).toBe(false);
    expect(response.results[0]).toMatchObject({
      status: ImportRowStatus.REJECTED,
      errorCode: "invalid_argument",
    });
    expect(response.results[0]?.error).toContain(message);
  });

  it("stores other formats' plaintext by hash with a hint that shows no more than four characters", async () => {
    const token = "oag_a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4";
    const response = await service
      .tokens()
      .importKeys({ keys: [row({ externalId: "oag-1", format: "hex", token })] });
    expect(response.committed).toBe(true);
    const { key } = await service.tokens().get({ keyId: response.results[0]?.keyId ?? "" });
    expect(key).toMatchObject({ hint: "oag_…c3d4", format: "hex", externalId: "oag-1" });
    const stored = await service.sql.query("select token_hash from api_keys where external_id = 'oag-1'");
    expect(Buffer.from(stored.rows[0].token_hash).toString("hex")).toBe(sha256Hex(token));
  });

  it("writes an audit entry and an IMPORTED key event per key, never a hash or a token in the audit log", async () => {
    const token = generateToken({ prefix: "lk", environment: "live" });
    const response = await service.tokens().importKeys({ keys: [row({ externalId: "audited", token })] });
    const keyId = response.results[0]?.keyId;
    const audit = await service.sql.query("select actor, action, details from audit_log where key_id = $1", [
      keyId,
    ]);
    expect(audit.rows).toEqual([
      {
        actor: "root",
        action: "key.import",
        details: {
          externalId: "audited",
          name: "imported",
          scopes: ["read"],
          environment: "live",
          format: "latchkey",
        },
      },
    ]);
    expect(JSON.stringify(audit.rows)).not.toContain(sha256Hex(token));
    const events = await service.sql.query(
      "select event_type, token_hash from key_event_outbox where key_id = $1",
      [keyId],
    );
    expect(events.rows).toHaveLength(1);
    expect(events.rows[0].event_type).toBe(KeyEventType.IMPORTED);
    expect(Buffer.from(events.rows[0].token_hash).toString("hex")).toBe(sha256Hex(token));
  });

  it("drops a NOT_FOUND the row cache held from before the import", async () => {
    const token = generateToken({ prefix: "lk", environment: "live" });
    expect((await service.tokens().verify({ token })).result).toBe(VerifyResult.NOT_FOUND);
    await service.tokens().importKeys({ keys: [row({ externalId: "was-unknown", token })] });
    expect((await service.tokens().verify({ token })).result).toBe(VerifyResult.VALID);
  });

  it("lets a team admin import into its own team only, and only scopes it holds", async () => {
    const admin = await service.teamWithAdmin("import-admins", ["read"]);
    const tokens = service.tokens(admin.adminKey);
    const own = await tokens.importKeys({ keys: [row({ externalId: "mine", teamId: admin.teamId })] });
    expect(own.committed).toBe(true);
    const refused = await tokens.importKeys({
      keys: [
        row({ externalId: "theirs", teamId }),
        row({ externalId: "too-strong", teamId: admin.teamId, scopes: ["billing:refund"] }),
      ],
    });
    expect(refused.results.map((r) => [r.errorCode, r.error])).toEqual([
      ["permission_denied", "an admin key manages the keys of its own team only"],
      ["permission_denied", "scopes: an admin key cannot import a key with scopes it lacks: billing:refund"],
    ]);
  });

  it("logs no token and no hash of an imported key, imported or rejected", async () => {
    const lines: string[] = [];
    const logger = pino({ level: "trace" }, { write: (line: string) => void lines.push(line) });
    const logged = await startTestService({ databaseUrl: service.databaseUrl, logger });
    try {
      const token = generateToken({ prefix: "lk", environment: "live" });
      const other = generateToken({ prefix: "lk", environment: "live" });
      const digest = createHash("sha256").update(other).digest();
      await logged.tokens().importKeys({
        keys: [
          row({ externalId: "quiet-1", token }),
          row({ externalId: "quiet-2", sha256: digest.toString("hex") }),
        ],
      });
      // Rejected: the same key under another external id.
      await logged.tokens().importKeys({ keys: [row({ externalId: "quiet-3", token })] });
      expect((await logged.tokens().verify({ token: other })).result).toBe(VerifyResult.VALID);
      const text = lines.join("");
      expect(text).toContain('"msg":"import batch"');
      for (const secret of [
        token,
        sha256Hex(token),
        other,
        digest.toString("hex"),
        digest.toString("base64"),
      ]) {
        expect(text).not.toContain(secret);
      }
    } finally {
      await logged.close();
    }
  });

  it("refuses a call without an admin key, an empty batch and one over importMaxBatch", async () => {
    await expect(service.tokens(null).importKeys({ keys: [row({ externalId: "x" })] })).rejects.toMatchObject(
      {
        code: Code.Unauthenticated,
      },
    );
    await expect(service.tokens().importKeys({ keys: [] })).rejects.toThrow(/keys: at least one key/);
    const small = await startTestService({
      databaseUrl: service.databaseUrl,
      settings: { importMaxBatch: 2 },
    });
    try {
      const keys = [1, 2, 3].map((i) => row({ externalId: `many-${i}` }));
      const error = await small
        .tokens()
        .importKeys({ keys })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.InvalidArgument);
      expect((error as ConnectError).rawMessage).toBe("keys: at most 2 keys per call");
    } finally {
      await small.close();
    }
  });
});

const counts = () => writtenCounts(service.sql);
