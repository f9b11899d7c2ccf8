// `latchkey-token-service import`, the real command in its own process,
// against the real token-service on PostgreSQL: good files, bad rows by line
// number, CSV quoting, standard input, re-runs, and no token in its output.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VerifyResult } from "@latchkey/proto";
import { generateToken } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ImportRun, runImportCommand } from "./import-command-process.js";
import { sha256Hex } from "./import-rows.js";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

let service: TestService;
let teamId: string;
const dir = mkdtempSync(join(tmpdir(), "latchkey-import-"));

function runImport(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<ImportRun> {
  return runImportCommand(args, { url: service.grpcUrl, adminKey: ROOT_KEY, ...options });
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const token = () => generateToken({ prefix: "lk", environment: "live" });
const jsonl = (rows: unknown[]) =>
  `${rows.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n")}\n`;

beforeAll(async () => {
  service = await startTestService();
  const { team } = await service.teams().createTeam({ name: "migrating" });
  teamId = team?.id ?? "";
});
afterAll(() => service?.close());

describe("latchkey-token-service import", () => {
  it("imports a JSON Lines file in batches, and a second run finds everything already there", async () => {
    const tokens = Array.from({ length: 7 }, token);
    const rows = tokens.map((t, i) =>
      i % 2 === 0
        ? { externalId: `j-${i}`, teamId, name: `key ${i}`, scopes: ["read"], token: t }
        : {
            external_id: `j-${i}`,
            team_id: teamId,
            name: `key ${i}`,
            token_sha256: sha256Hex(t),
            format: "latchkey",
          },
    );
    const path = file("good.jsonl", jsonl(rows));
    const first = await runImport([path, "--batch-size", "3"]);
    expect(first.stderr).toMatch(/^progress: \d+% /m);
    expect(first.stdout).toBe("imported 7, already there 0, bad rows 0 (of 7 rows read)\n");
    expect(first.code).toBe(0);
    for (const t of tokens)
      expect((await service.tokens().verify({ token: t })).result).toBe(VerifyResult.VALID);
    const again = await runImport([path]);
    expect(again.stdout).toBe("imported 0, already there 7, bad rows 0 (of 7 rows read)\n");
    expect(again.code).toBe(0);
    for (const t of tokens) {
      expect(first.stdout + first.stderr + again.stdout + again.stderr).not.toContain(t);
      expect(first.stdout + first.stderr).not.toContain(sha256Hex(t));
    }
  });

  it("reports bad rows by line number, skips them, and imports the rest of their batch", async () => {
    const dup = token();
    const good = [token(), token(), token()];
    const path = file(
      "bad.jsonl",
      jsonl([
        { externalId: "b-1", teamId, name: "first", token: dup },
        `{"externalId": "b-2", "teamId": "${teamId}", "name": "broken", "token": "${token()}"`,
        { externalId: "b-3", teamId, token: good[0] },
        { externalId: "b-4", teamId, name: "bad hash", tokenSha256: "xyz" },
        { externalId: "b-5", teamId, name: "same key as line 1", token: dup },
        { externalId: "b-6", teamId: "team_0000000000000000000000", name: "nobody's", token: token() },
        { externalId: "b-7", teamId, name: "ok", token: good[1] },
        { externalId: "b-8", teamId, name: "typo", scope: ["read"], token: token() },
        "",
        { externalId: "b-10", teamId, name: "ok too", token: good[2] },
        { externalId: "b-11", teamId, name: 5, token: token() },
      ]),
    );
    const run = await runImport([path]);
    expect(run.stderr).toContain("line 2: malformed JSON\n");
    expect(run.stderr).toContain("line 3: name: is required\n");
    expect(run.stderr).toContain("line 4: token_sha256: must be a SHA-256");
    expect(run.stderr).toContain("line 5: token: the same as key 0 of this batch (a key is imported once)\n");
    expect(run.stderr).toContain("line 6: team_id: team team_0000000000000000000000 not found\n");
    expect(run.stderr).toContain('line 8: unknown field "scope"\n');
    expect(run.stderr).toContain("line 11: name: wrong type or shape\n");
    expect(run.stdout).toBe(
      "imported 3, already there 0, bad rows 7 (of 10 rows read)\nbad rows skipped, by line: 2, 8, 11, 3, 4, 5, 6\n",
    );
    expect(run.code).toBe(3);
    expect((await service.tokens().verify({ token: good[0] ?? "" })).result).toBe(VerifyResult.NOT_FOUND);
    for (const t of [dup, good[1] ?? "", good[2] ?? ""]) {
      expect((await service.tokens().verify({ token: t })).result).toBe(VerifyResult.VALID);
      expect(run.stdout + run.stderr).not.toContain(t);
    }
  });

  it("keeps several batches in flight, each still written whole or not at all", async () => {
    const good = Array.from({ length: 10 }, token);
    const twice = token();
    const rows = [
      ...good.map((t, i) => ({ externalId: `cc-${i}`, teamId, name: "k", token: t })),
      // In a later batch than its first copy, and in the batch of a row that is bad on its own.
      { externalId: "cc-twice", teamId, name: "k", token: good[1] },
      { externalId: "cc-nobody", teamId: "team_0000000000000000000000", name: "k", token: twice },
    ];
    const run = await runImport([
      file("concurrent.jsonl", jsonl(rows)),
      "--batch-size",
      "2",
      "--concurrency",
      "3",
    ]);
    expect(run.stdout).toBe(
      "imported 10, already there 0, bad rows 2 (of 12 rows read)\nbad rows skipped, by line: 11, 12\n",
    );
    expect(run.stderr).toContain("line 11: token: another key already has this token");
    expect(run.code).toBe(3);
    for (const t of good)
      expect((await service.tokens().verify({ token: t })).result).toBe(VerifyResult.VALID);
    expect((await service.tokens().verify({ token: twice })).result).toBe(VerifyResult.NOT_FOUND);
  });

  it("reads CSV with a header, quoted commas, doubled quotes and a cell over two lines", async () => {
    const tokens = [token(), token(), token()];
    const path = file(
      "keys.csv",
      [
        "external_id,team_id,name,scopes,token,token_sha256,metadata,create_time",
        `c-1,${teamId},"billing, prod","read chats:write",${tokens[0]},,"{""owner"": ""ops, team""}",2024-05-01T00:00:00Z`,
        `c-2,${teamId},"the ""old"" key",read,,${sha256Hex(tokens[1] ?? "")},"{""a"":`,
        `""b""}",`,
        `c-3,${teamId},short row`,
        `c-4,${teamId},plain,read,${tokens[2]},,,`,
      ].join("\r\n"),
    );
    const run = await runImport([path]);
    expect(run.stderr).toContain("line 5: 3 fields where the header has 8\n");
    expect(run.stdout).toBe(
      "imported 3, already there 0, bad rows 1 (of 4 rows read)\nbad rows skipped, by line: 5\n",
    );
    const first = await service.tokens().verify({ token: tokens[0] ?? "" });
    expect(first.key).toMatchObject({
      name: "billing, prod",
      scopes: ["read", "chats:write"],
      metadata: { owner: "ops, team" },
    });
    expect(first.key?.createTime?.seconds).toBe(BigInt(Date.parse("2024-05-01T00:00:00Z") / 1000));
    const second = await service.tokens().verify({ token: tokens[1] ?? "" });
    expect(second.key).toMatchObject({ name: 'the "old" key', metadata: { a: "b" } });
  });

  it("reads standard input", async () => {
    const t = token();
    const run = await runImport(["-"], {
      stdin: jsonl([{ externalId: "s-1", teamId, name: "stdin", token: t }]),
    });
    expect(run.stdout).toBe("imported 1, already there 0, bad rows 0 (of 1 rows read)\n");
    expect((await service.tokens().verify({ token: t })).result).toBe(VerifyResult.VALID);
  });

  it("goes on across the gRPC listener's connection age (GOAWAY), sending a refused batch again", async () => {
    const aging = await startTestService({
      databaseUrl: service.databaseUrl,
      settings: { grpcMaxConnectionAgeMs: 300, grpcMaxConnectionAgeGraceMs: 50 },
    });
    try {
      const rows = Array.from({ length: 120 }, (_, i) => ({
        externalId: `age-${i}`,
        teamId,
        name: "k",
        token: token(),
      }));
      // One batch at a time: each call must fit the 50 ms grace, which four at once on a busy
      // machine may not (they would be cut, and sent again, until the retries ran out).
      const run = await runImport(
        [file("aging.jsonl", jsonl(rows)), "--batch-size", "1", "--concurrency", "1"],
        {
          env: { LATCHKEY_TOKEN_SERVICE_URL: aging.grpcUrl },
        },
      );
      // A batch cut off after its commit comes back as already there: every row is in, none twice.
      const [, imported, already] =
        /^imported (\d+), already there (\d+), bad rows 0 \(of 120 rows read\)$/m.exec(run.stdout) ?? [];
      expect(Number(imported) + Number(already), run.stderr).toBe(120);
      expect(run.code).toBe(0);
      const stored = await service.sql.query(
        "select count(*)::int as n from api_keys where external_id like 'age-%'",
      );
      expect(stored.rows[0].n).toBe(120);
    } finally {
      await aging.close();
    }
  });

  // Usage errors (no admin key, bad flags, an unknown CSV column) are tested in process, beside the command.
  it("stops on a refused admin key", async () => {
    const path = file("one.jsonl", jsonl([{ externalId: "k-1", teamId, name: "k", token: token() }]));
    const wrong = await runImport([path], {
      env: { LATCHKEY_ADMIN_KEY: "not-a-key-of-this-service-at-all-0123456789" },
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("stopped near line 1: Unauthenticated");
    expect(wrong.stdout).toBe("imported 0, already there 0, bad rows 0 (of 1 rows read)\n");
  });
});
