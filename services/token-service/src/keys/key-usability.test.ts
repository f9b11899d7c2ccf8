import { describe, expect, it } from "vitest";
import { keyUsability } from "./key-usability.js";

const NOW = Date.UTC(2026, 0, 1);
const live = { revoked_at: null, enabled: true, expires_at: null };

describe("keyUsability", () => {
  it("is usable when not revoked, enabled and not yet expired", () => {
    expect(keyUsability(live, NOW)).toEqual({ usable: true });
    expect(keyUsability({ ...live, expires_at: new Date(NOW + 1) }, NOW)).toEqual({ usable: true });
  });

  it("expires at the expiry instant, not after it", () => {
    expect(keyUsability({ ...live, expires_at: new Date(NOW) }, NOW)).toEqual({
      usable: false,
      reason: "expired",
    });
  });

  it("names revoked before disabled before expired", () => {
    const all = { revoked_at: new Date(0), enabled: false, expires_at: new Date(0) };
    expect(keyUsability(all, NOW)).toEqual({ usable: false, reason: "revoked" });
    expect(keyUsability({ ...all, revoked_at: null }, NOW)).toEqual({ usable: false, reason: "disabled" });
  });

  it("lets Rotate past a disabled key, but not past an expired or revoked one", () => {
    const disabled = { ...live, enabled: false };
    expect(keyUsability(disabled, NOW, { allowDisabled: true })).toEqual({ usable: true });
    expect(keyUsability({ ...disabled, expires_at: new Date(0) }, NOW, { allowDisabled: true })).toEqual({
      usable: false,
      reason: "expired",
    });
    expect(keyUsability({ ...disabled, revoked_at: new Date(0) }, NOW, { allowDisabled: true })).toEqual({
      usable: false,
      reason: "revoked",
    });
  });

  it("returns the same outcome objects every time, so Verify's cache hit allocates nothing", () => {
    expect(keyUsability(live, NOW)).toBe(keyUsability(live, NOW));
    expect(keyUsability({ ...live, enabled: false }, NOW)).toBe(
      keyUsability({ ...live, enabled: false }, NOW),
    );
  });
});
