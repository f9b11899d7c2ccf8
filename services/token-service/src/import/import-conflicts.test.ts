import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Principal } from "../auth/principal.js";
import { type ExistingKey, judgeAgainstDatabase } from "./import-conflicts.js";

const fingerprint = Buffer.alloc(32, 1);
const row = { teamId: "team_a", externalId: "ext-1", fingerprint, secretField: "token_sha256" as const };
const root: Principal = { kind: "root", actor: "root" };
const otherAdmin: Principal = { kind: "admin", actor: "key_adm", teamId: "team_b", scopes: ["admin"] };
const key = (fields: Partial<ExistingKey>): ExistingKey => ({
  id: "key_1",
  teamId: "team_a",
  externalId: "ext-1",
  fingerprint,
  ...fields,
});

describe("judgeAgainstDatabase", () => {
  it("finds nothing in the way of a new key", () => {
    expect(judgeAgainstDatabase(row, undefined, undefined, root)).toEqual({ kind: "none" });
  });

  it("takes the same external id and content as imported before, and other content as a conflict", () => {
    expect(judgeAgainstDatabase(row, key({}), key({}), root)).toEqual({ kind: "already", keyId: "key_1" });
    const changed = judgeAgainstDatabase(row, key({ fingerprint: Buffer.alloc(32, 2) }), undefined, root);
    expect(changed).toMatchObject({ kind: "rejected", code: Code.AlreadyExists });
    expect(changed.kind === "rejected" && changed.error).toMatch(/^external_id: ext-1 was imported before/);
  });

  it("judges a hash held by the row's own external id, missed by the first read, as imported before", () => {
    // A retry racing the attempt it replaces: that attempt committed between the two reads.
    expect(judgeAgainstDatabase(row, undefined, key({}), root)).toEqual({ kind: "already", keyId: "key_1" });
    const other = judgeAgainstDatabase(row, undefined, key({ fingerprint: Buffer.alloc(32, 3) }), root);
    expect(other).toMatchObject({ kind: "rejected", code: Code.AlreadyExists });
  });

  it("refuses a hash another key holds, naming that key only to a caller who may see it", () => {
    for (const holder of [
      key({ externalId: null }),
      key({ externalId: "ext-2" }),
      key({ teamId: "team_b" }),
    ]) {
      const judged = judgeAgainstDatabase(row, undefined, holder, root);
      expect(judged).toEqual({
        kind: "rejected",
        error: "token_sha256: another key already has this token (key_1)",
        code: Code.AlreadyExists,
      });
    }
    expect(judgeAgainstDatabase(row, undefined, key({ externalId: null }), otherAdmin)).toMatchObject({
      error: "token_sha256: another key already has this token",
    });
  });
});
