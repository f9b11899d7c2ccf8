import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { KeySchema, PropagationSchema } from "@latchkey/proto";
import { describe, expect, it } from "vitest";
import { keyState, metadataText, parseMetadata, parseScopes, propagationText } from "./format.js";

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

describe("propagationText", () => {
  const propagation = (live: number, confirmed: number, ms: number, complete: boolean) =>
    create(PropagationSchema, { liveVerifiers: live, confirmed, slowest: durationFromMs(ms), complete });
  it("says how many verifiers confirmed, and how fast", () => {
    expect(propagationText(propagation(12, 12, 9.4, true))).toBe(
      "Revoked: confirmed by 12 of 12 verifiers in 9 ms.",
    );
    expect(propagationText(propagation(3, 2, 1500, false))).toBe(
      "Revoked: confirmed by 2 of 3 verifiers in 1500 ms; the others had not answered within 2 s.",
    );
  });
  it("says when no verifier was there to ask", () => {
    expect(propagationText(propagation(0, 0, 0, true))).toBe("Revoked. No verifier was live to confirm it.");
    expect(propagationText(undefined)).toBe("Revoked.");
  });
});
