import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@latchkey/config";
import { describe, expect, it } from "vitest";
import { loadTokenServiceConfig } from "../config.js";
import {
  loadMasterKeyring,
  MASTER_KEY_ENV,
  MASTER_KEY_FILE_ENV,
  parseMasterKeyring,
} from "./master-keyring.js";

const material = randomBytes(32);
const base64 = material.toString("base64");
const base64url = material.toString("base64url");

/** The ConfigError `load` throws; fails when it does not throw one. */
function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("parseMasterKeyring", () => {
  it("reads ids and 32-byte keys in base64 or base64url; the first is active", () => {
    const other = randomBytes(32);
    const ring = parseMasterKeyring(`new:${base64url}, old:${other.toString("base64")}`, MASTER_KEY_ENV);
    expect(ring.activeId).toBe("new");
    expect(ring.ids).toEqual(["new", "old"]);
    expect(ring.key("new")?.equals(material)).toBe(true);
    expect(ring.key("old")?.equals(other)).toBe(true);
    expect(ring.key("gone")).toBeUndefined();
  });

  it("reads a file's lines with comments", () => {
    const ring = parseMasterKeyring(
      `# rotated 2026-12\n2026-12:${base64}\n\n2026-06:${base64url} # retiring\n`,
      MASTER_KEY_FILE_ENV,
    );
    expect(ring.ids).toEqual(["2026-12", "2026-06"]);
  });

  it.each([
    ["nothing", ""],
    ["no id", base64],
    ["an empty id", `:${base64}`],
    ["an id with a space", `a b:${base64}`],
    ["a 33-character id", `${"a".repeat(33)}:${base64}`],
    ["31 bytes", `k:${randomBytes(31).toString("base64")}`],
    ["33 bytes", `k:${randomBytes(33).toString("base64")}`],
    ["hex", `k:${material.toString("hex")}`],
    ["stray bits in the last character", `k:${base64url.slice(0, -1)}${base64url.endsWith("B") ? "C" : "B"}`],
    ["an id twice", `k:${base64},k:${base64}`],
    ["17 keys", Array.from({ length: 17 }, (_, i) => `k${i}:${base64}`).join(",")],
  ])("refuses %s, naming the setting and never the key material", (_what, text) => {
    const error = configError(() => parseMasterKeyring(text, MASTER_KEY_ENV));
    expect(error.settings).toEqual([MASTER_KEY_ENV]);
    expect(error.message.startsWith(`${MASTER_KEY_ENV}: `)).toBe(true);
    expect(error.message).not.toContain(base64.slice(0, 20));
    expect(error.message).not.toContain(base64url.slice(0, 20));
  });

  it("accepts exactly the canonical encoding (stray bits would make two spellings of one key)", () => {
    expect(parseMasterKeyring(`k:${base64}`, MASTER_KEY_ENV).key("k")?.equals(material)).toBe(true);
  });
});

describe("the master key settings", () => {
  it("are optional: without them keychains are off", () => {
    expect(loadMasterKeyring(loadTokenServiceConfig({}))).toBeUndefined();
  });

  it("refuse a malformed inline key at start-up, naming the variable", () => {
    const error = configError(() =>
      loadTokenServiceConfig({ [MASTER_KEY_ENV]: `k:${material.toString("hex")}` }),
    );
    expect(error.settings).toEqual([MASTER_KEY_ENV]);
    expect(error.message).toContain(`${MASTER_KEY_ENV}: master key "k" must be exactly 32 bytes`);
    expect(error.message).not.toContain(material.toString("hex").slice(0, 16));
  });

  it("refuse both at once", () => {
    const error = configError(() =>
      loadTokenServiceConfig({ [MASTER_KEY_ENV]: `k:${base64}`, [MASTER_KEY_FILE_ENV]: "/tmp/x" }),
    );
    expect(error.settings).toContain(MASTER_KEY_ENV);
    expect(error.message).toContain(MASTER_KEY_FILE_ENV);
  });

  it("read the key file at start, and refuse an unreadable or malformed one naming the file variable", () => {
    const dir = mkdtempSync(join(tmpdir(), "latchkey-master-"));
    const good = join(dir, "good.keys");
    writeFileSync(good, `2026-12:${base64}\n`);
    const config = loadTokenServiceConfig({ [MASTER_KEY_FILE_ENV]: good });
    expect(loadMasterKeyring(config)?.activeId).toBe("2026-12");
    const bad = join(dir, "bad.keys");
    writeFileSync(bad, "2026-12:short\n");
    for (const path of [bad, join(dir, "missing.keys")]) {
      const error = configError(() =>
        loadMasterKeyring(loadTokenServiceConfig({ [MASTER_KEY_FILE_ENV]: path })),
      );
      expect(error.settings).toEqual([MASTER_KEY_FILE_ENV]);
      expect(error.message.startsWith(`${MASTER_KEY_FILE_ENV}: `)).toBe(true);
    }
  });
});
