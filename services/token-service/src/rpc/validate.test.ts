import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  optionalText,
  pageSize,
  rejectUnknownFields,
  requireKeyId,
  requireMetadata,
  requireName,
  requireScopes,
  requireTeamId,
} from "./validate.js";

const invalid = (field: string) =>
  expect.objectContaining({
    code: Code.InvalidArgument,
    rawMessage: expect.stringMatching(new RegExp(`^${field.replace(".", "\\.")}: `)),
  });

describe("requireName", () => {
  it("trims and accepts up to 100 characters, counting code points", () => {
    expect(requireName("  worker  ")).toBe("worker");
    expect(requireName("😀".repeat(100))).toBe("😀".repeat(100));
  });
  it.each([
    ["empty", ""],
    ["blank", " \t "],
    ["101 characters", "a".repeat(101)],
    ["a control character inside", "a\u0001b"],
    ["DEL", "a\u007fb"],
    ["a C1 control", "a\u0085b"],
    ["a paragraph separator", "a\u2029b"],
  ])("refuses %s", (_what, value) => {
    expect(() => requireName(value)).toThrow(invalid("name"));
  });
  it("names the field it was given", () => {
    expect(() => requireName("", "team.name")).toThrow(invalid("team.name"));
  });
});

describe("optionalText", () => {
  it("maps empty to null and keeps other text as is", () => {
    expect(optionalText("", "reason", 10)).toBeNull();
    expect(optionalText(" x ", "reason", 10)).toBe(" x ");
  });
  it("refuses long text and control characters", () => {
    expect(() => optionalText("a".repeat(11), "reason", 10)).toThrow(invalid("reason"));
    expect(() => optionalText("a\nb", "reason", 10)).toThrow(invalid("reason"));
  });
});

describe("ids", () => {
  it("accept the shapes the service generates", () => {
    expect(requireKeyId("key_0123456789abcdefghijkl")).toBe("key_0123456789abcdefghijkl");
    expect(requireTeamId("team_ABCDEFGHIJKLMNOPQRSTUV")).toBe("team_ABCDEFGHIJKLMNOPQRSTUV");
  });
  it.each([
    "",
    "key_",
    "key_0123456789abcdefghijk",
    "key_0123456789abcdefghijkl ",
    "team_0123456789abcdefghijkl",
    "key_0123456789abcdefghij-l",
  ])("refuse key id %j", (value) => {
    expect(() => requireKeyId(value)).toThrow(invalid("key_id"));
  });
});

describe("requireScopes", () => {
  it("removes duplicates and keeps order", () => {
    expect(requireScopes(["read", "chats:write", "read"])).toEqual(["read", "chats:write"]);
  });
  it("refuses bad scopes under the given field", () => {
    expect(() => requireScopes(["Read"], "scopes.values")).toThrow(invalid("scopes.values"));
  });
});

describe("requireMetadata", () => {
  it("accepts 32 entries of safe keys", () => {
    const metadata = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`team.k-${i}:x/y`, "v"]));
    expect(requireMetadata(metadata)).toEqual(metadata);
  });
  it.each([
    ["33 entries", Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])), "metadata"],
    ["an empty key", { "": "v" }, "metadata"],
    ["a key starting with a dot", { ".k": "v" }, "metadata"],
    ["a 513-character value", { k: "v".repeat(513) }, "metadata.k"],
    ["a value with a newline", { k: "a\nb" }, "metadata.k"],
  ])("refuses %s", (_what, metadata, field) => {
    expect(() => requireMetadata(metadata)).toThrow(invalid(field));
  });
});

describe("pageSize", () => {
  it("uses the default for 0 and accepts 1–500", () => {
    expect(pageSize(0)).toBe(100);
    expect(pageSize(1)).toBe(1);
    expect(pageSize(500)).toBe(500);
  });
  it.each([-1, 501, 1000])("refuses %i", (value) => {
    expect(() => pageSize(value)).toThrow(invalid("page_size"));
  });
});

describe("rejectUnknownFields", () => {
  it("passes a message without unknown fields and refuses one with them, naming their numbers", () => {
    expect(() => rejectUnknownFields({}, "VerifyRequest")).not.toThrow();
    expect(() => rejectUnknownFields({ $unknown: [] }, "VerifyRequest")).not.toThrow();
    expect(() => rejectUnknownFields({ $unknown: [{ no: 7 }, { no: 99 }] }, "VerifyRequest")).toThrow(
      expect.objectContaining({ rawMessage: "VerifyRequest: unknown field number(s) 7, 99" }),
    );
  });
});
