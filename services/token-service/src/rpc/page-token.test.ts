import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { decodePageToken, encodePageToken, pageOf } from "./page-token.js";

describe("page tokens", () => {
  it("round-trip a cursor", () => {
    const cursor = { createdAt: new Date("2026-11-26T10:11:12.345Z"), id: "key_0123456789abcdefghijkl" };
    expect(decodePageToken(encodePageToken(cursor))).toEqual(cursor);
  });

  it("round-trip the earliest and latest times a row can hold (an imported key may predate 1970)", () => {
    for (const at of ["0001-01-01T00:00:00.000Z", "1900-05-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"]) {
      const cursor = { createdAt: new Date(at), id: "key_0123456789abcdefghijkl" };
      expect(decodePageToken(encodePageToken(cursor))).toEqual(cursor);
    }
  });

  it("mean the first page when empty", () => {
    expect(decodePageToken("")).toBeUndefined();
  });

  it.each([
    ["garbage", "%%%not base64%%%"],
    ["base64 of text", Buffer.from("hello").toString("base64url")],
    ["a JSON object", Buffer.from('{"at":"2026-01-01","id":"x"}').toString("base64url")],
    ["a short array", Buffer.from('["2026-01-01T00:00:00Z"]').toString("base64url")],
    ["a bad date", Buffer.from('["yesterday","key_x"]').toString("base64url")],
    ["a number id", Buffer.from('["2026-01-01T00:00:00Z",5]').toString("base64url")],
    [
      "an oversized id",
      Buffer.from(JSON.stringify(["2026-01-01T00:00:00Z", "k".repeat(41)])).toString("base64url"),
    ],
    ["an oversized token", "a".repeat(201)],
    // PostgreSQL would refuse these with an error (an INTERNAL answer) rather than find no rows.
    [
      "a NUL in the id",
      Buffer.from(JSON.stringify(["2026-01-01T00:00:00Z", "key_\0"])).toString("base64url"),
    ],
    ["an empty id", Buffer.from(JSON.stringify(["2026-01-01T00:00:00Z", ""])).toString("base64url")],
    [
      "a quote in the id",
      Buffer.from(JSON.stringify(["2026-01-01T00:00:00Z", "key_'"])).toString("base64url"),
    ],
    [
      "a date before year 1",
      Buffer.from(JSON.stringify(["-000001-12-31T00:00:00Z", "key_x"])).toString("base64url"),
    ],
    [
      "a date after 9999",
      Buffer.from(JSON.stringify(["+275760-09-13T00:00:00Z", "key_x"])).toString("base64url"),
    ],
  ])("refuse %s as INVALID_ARGUMENT on page_token", (_what, token) => {
    expect(() => decodePageToken(token)).toThrow(
      expect.objectContaining({
        code: Code.InvalidArgument,
        rawMessage: expect.stringMatching(/^page_token: /),
      }),
    );
  });
});

describe("pageOf", () => {
  const rows = [1, 2, 3].map((n) => ({ id: `key_${n}`, created_at: new Date(Date.UTC(2026, 0, n)) }));

  it("keeps `limit` rows and points the next page after the last of them when more follow", () => {
    const { page, nextPageToken } = pageOf(rows, 2);
    expect(page.map((row) => row.id)).toEqual(["key_1", "key_2"]);
    expect(decodePageToken(nextPageToken)).toEqual({ createdAt: rows[1]?.created_at, id: "key_2" });
  });

  it("has no next page when nothing follows", () => {
    expect(pageOf(rows, 3)).toEqual({ page: rows, nextPageToken: "" });
    expect(pageOf([], 3)).toEqual({ page: [], nextPageToken: "" });
  });
});
