import { describe, expect, it } from "vitest";
import { resolveRequestId } from "./request-id.js";

describe("resolveRequestId", () => {
  it("keeps a client's id made of [A-Za-z0-9._-], up to 128 characters", () => {
    expect(resolveRequestId("req-42.a_B")).toBe("req-42.a_B");
    expect(resolveRequestId("x".repeat(128))).toBe("x".repeat(128));
  });

  it("replaces a hostile or oversized client id with a fresh one", () => {
    for (const hostile of ["", "a b", "line\nforged", 'quote"', "x".repeat(129), "é", "a\u0000b"]) {
      const id = resolveRequestId(hostile);
      expect(id).not.toBe(hostile);
      expect(id).toMatch(/^[A-Za-z0-9_-]{12}-[0-9a-z]+$/);
    }
  });

  it("makes ids that are unique within the process and share its random prefix", () => {
    const ids = Array.from({ length: 10_000 }, () => resolveRequestId(undefined));
    expect(new Set(ids).size).toBe(ids.length);
    const prefixes = new Set(ids.map((id) => id.split("-").slice(0, -1).join("-")));
    expect(prefixes.size).toBe(1);
    expect(resolveRequestId(null)).toMatch(/^[A-Za-z0-9_-]{12}-[0-9a-z]+$/);
  });
});
