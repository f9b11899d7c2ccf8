import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, loadConfig } from "./load-config.js";
import { booleanSetting, integerSetting, listenAddress } from "./schema-helpers.js";

const schema = z
  .object({
    listen: listenAddress.prefault("0.0.0.0:8081"),
    flushMs: integerSetting(10, 60_000).default(5000),
    tls: booleanSetting.default(false),
  })
  .strict();
const env = { listen: "LATCHKEY_LISTEN", flushMs: "LATCHKEY_FLUSH_MS", tls: "LATCHKEY_TLS" } as const;

function file(contents: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "lk-config-")), "config.yaml");
  writeFileSync(path, contents);
  return path;
}

describe("loadConfig", () => {
  it("uses defaults when nothing is set", () => {
    expect(loadConfig({ schema, env, source: {} })).toEqual({
      listen: { host: "0.0.0.0", port: 8081 },
      flushMs: 5000,
      tls: false,
    });
  });

  it("layers defaults < file < environment", () => {
    const path = file("listen: 127.0.0.1:9000\nflushMs: 100\n");
    const config = loadConfig({ schema, env, source: { LATCHKEY_CONFIG: path, LATCHKEY_FLUSH_MS: "250" } });
    expect(config).toEqual({ listen: { host: "127.0.0.1", port: 9000 }, flushMs: 250, tls: false });
  });

  it("names the environment variable of a bad setting", () => {
    expect(() => loadConfig({ schema, env, source: { LATCHKEY_FLUSH_MS: "soon" } })).toThrow(
      /LATCHKEY_FLUSH_MS/,
    );
    expect(() => loadConfig({ schema, env, source: { LATCHKEY_LISTEN: "nowhere" } })).toThrow(
      /LATCHKEY_LISTEN/,
    );
    expect(() => loadConfig({ schema, env, source: { LATCHKEY_LISTEN: "1.2.3.4:70000" } })).toThrow(/port/);
    expect(() => loadConfig({ schema, env, source: { LATCHKEY_TLS: "yes" } })).toThrow(/LATCHKEY_TLS/);
  });

  it("names the file key of a bad setting and rejects unknown keys", () => {
    const bad = file("flushMs: 1\n");
    expect(() => loadConfig({ schema, env, source: { LATCHKEY_CONFIG: bad } })).toThrow(/file key "flushMs"/);
    const typo = file("flushMS: 100\n");
    try {
      loadConfig({ schema, env, source: { LATCHKEY_CONFIG: typo } });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).settings).toContain("flushMS");
    }
  });

  it("rejects unreadable, non-mapping and hostile files", () => {
    expect(() => loadConfig({ schema, env, source: { LATCHKEY_CONFIG: "/nonexistent/x.yaml" } })).toThrow(
      /LATCHKEY_CONFIG: cannot read/,
    );
    expect(() => loadConfig({ schema, env, source: { LATCHKEY_CONFIG: file("- a\n- b\n") } })).toThrow(
      /mapping/,
    );
    expect(() => loadConfig({ schema, env, source: { LATCHKEY_CONFIG: file("a: [\n") } })).toThrow(
      /not valid/,
    );
    const laughs = ["a: &a [x,x,x,x,x,x,x,x,x,x]"];
    for (let i = 1; i < 200; i++)
      laughs.push(`a${i}: &a${i} [*a${i === 1 ? "" : i - 1},*a${i === 1 ? "" : i - 1}]`);
    expect(() => loadConfig({ schema, env, source: { LATCHKEY_CONFIG: file(laughs.join("\n")) } })).toThrow(
      ConfigError,
    );
  });
});
