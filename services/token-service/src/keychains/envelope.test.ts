import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { newDataKey, openSecret, sealSecret, unwrapDataKey, wrapDataKey } from "./envelope.js";

const master = randomBytes(32);
const KC = "kc_0123456789012345678901";

describe("data keys", () => {
  it("unwrap to the key that was wrapped, under the same keychain and master key id", () => {
    const { dataKey, wrapped } = newDataKey(master, KC, "m1");
    const opened = unwrapDataKey(master, KC, "m1", wrapped);
    expect(opened.ok && opened.plaintext.equals(dataKey)).toBe(true);
  });

  it.each([
    ["another keychain", (w: Buffer) => unwrapDataKey(master, "kc_9999999999999999999999", "m1", w)],
    ["another master key id", (w: Buffer) => unwrapDataKey(master, KC, "m2", w)],
    ["other master key material", (w: Buffer) => unwrapDataKey(randomBytes(32), KC, "m1", w)],
    ["a flipped tag bit", (w: Buffer) => unwrapDataKey(master, KC, "m1", flip(w, w.length - 1))],
    ["a flipped nonce bit", (w: Buffer) => unwrapDataKey(master, KC, "m1", flip(w, 3))],
  ])("fail authentication with %s", (_what, open) => {
    const { wrapped } = newDataKey(master, KC, "m1");
    expect(open(wrapped)).toEqual({ ok: false, reason: "authentication" });
  });

  it("refuse truncated, empty and unknown-version input as malformed", () => {
    const { wrapped } = newDataKey(master, KC, "m1");
    expect(unwrapDataKey(master, KC, "m1", wrapped.subarray(0, 20))).toEqual({
      ok: false,
      reason: "malformed",
    });
    expect(unwrapDataKey(master, KC, "m1", new Uint8Array())).toEqual({ ok: false, reason: "malformed" });
    const other = Buffer.from(wrapped);
    other[0] = 2;
    expect(unwrapDataKey(master, KC, "m1", other)).toEqual({ ok: false, reason: "malformed" });
  });

  it("refuse a wrapped value that is not 32 bytes even when it authenticates", () => {
    const short = wrapDataKey(master, KC, "m1", randomBytes(16));
    expect(unwrapDataKey(master, KC, "m1", short)).toEqual({ ok: false, reason: "malformed" });
  });
});

describe("secrets", () => {
  const dataKey = randomBytes(32);

  it("round-trip any UTF-8, with a fresh nonce each time", () => {
    const value = "sk_live_ünïcode-✓-😀";
    const a = sealSecret(dataKey, KC, "STRIPE", value);
    const b = sealSecret(dataKey, KC, "STRIPE", value);
    expect(a.equals(b)).toBe(false);
    const opened = openSecret(dataKey, KC, "STRIPE", a);
    expect(opened.ok && opened.plaintext.toString("utf8")).toBe(value);
    expect(a.toString("latin1")).not.toContain("sk_live");
  });

  it("are bound to their name and keychain, and refuse any altered byte", () => {
    const sealed = sealSecret(dataKey, KC, "STRIPE", "value-0123456789");
    expect(openSecret(dataKey, KC, "OPENAI", sealed).ok).toBe(false);
    expect(openSecret(dataKey, "kc_9999999999999999999999", "STRIPE", sealed).ok).toBe(false);
    for (let i = 1; i < sealed.length; i++) {
      expect(openSecret(dataKey, KC, "STRIPE", flip(sealed, i))).toEqual({
        ok: false,
        reason: "authentication",
      });
    }
  });
});

function flip(bytes: Buffer, index: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[index] = (copy[index] as number) ^ 1;
  return copy;
}
