// The commands the README documents exist. Its configuration tables are checked
// against the services' schemas in config-tables.test.ts.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const scripts = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"))
  .scripts as Record<string, string>;

describe("README", () => {
  it("names only npm scripts that exist", () => {
    for (const match of readme.matchAll(/npm run ([a-z:-]+)/g)) {
      expect(Object.keys(scripts), match[0]).toContain(match[1]);
    }
    expect(scripts.start).toBeDefined();
    expect(scripts.test).toBeDefined();
  });

  it("has no benchmark placeholders left", () => {
    expect(readme).not.toMatch(/BENCH_[A-Z]+/);
  });
});
