import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { KeySchema } from "@latchkey/proto";
import { describe, expect, it } from "vitest";
import { keyState, metadataText, parseMetadata, parseScopes } from "./format.js";

describe("keyState", () => {
  const now = Date.parse("2026-12-02T10:00:00Z");
  const key = (fields: Parameters<typeof create<typeof KeySchema>>[1]) =>
    create(KeySchema, { enabled: true, ...fields });
  it("puts revoked before expired before disabled before expiring", () => {
    const past = timestampFromMs(now - 1000);
    const future = timestampFromMs(now + 1000);
    expect(keyState(key({ revokeTime: past, expireTime: past, enabled: false }), now)).toBe("revoked");
    expect(keyState(key({ expireTime: past, enabled: false }), now)).toBe("expired");
    expect(keyState(key({ expireTime: future, enabled: false }), now)).toBe("disabled");
    expect(keyState(key({ expireTime: future }), now)).toBe("expiring");
    expect(keyState(key({}), now)).toBe("active");
  });
});

describe("metadata and scopes as typed", () => {
  it("reads name=value lines and writes them back", () => {
    const entries = parseMetadata(" owner = payments \n\nregion=eu=west\n");
    expect(entries).toEqual({ owner: "payments", region: "eu=west" });
    expect(parseMetadata(metadataText(entries))).toEqual(entries);
  });

  it("names the line without a name", () => {
    expect(() => parseMetadata("ok=1\n=nameless")).toThrow("metadata line 2: write it as name=value");
    expect(() => parseMetadata("ok=1\nno equals")).toThrow("metadata line 2");
  });

  it("splits scopes on spaces and commas, once each", () => {
    expect(parseScopes(" read, chats:write  read\n")).toEqual(["read", "chats:write"]);
    expect(parseScopes("")).toEqual([]);
  });
});
