// The commands the README documents exist. Its configuration tables are checked
// against the services' schemas in config-tables.test.ts.
import { readdirSync, readFileSync } from "node:fs";
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

  it("links every sidecar example, and each is loaded by a test that runs it", () => {
    const examples = readdirSync(new URL("../../services/sidecar/examples/", import.meta.url));
    // Seed 002's example belongs to the keychain tests (test/keychain/), the others' to test/seeds/.
    const seedTests = ["../seeds/", "../keychain/"]
      .flatMap((dir) =>
        readdirSync(new URL(dir, import.meta.url))
          .filter((name) => name.endsWith(".test.ts"))
          .map((name) => readFileSync(new URL(`${dir}${name}`, import.meta.url), "utf8")),
      )
      .join("\n");
    for (const name of examples.filter((each) => /^(policy|ratelimit)-\d{3}-.+\.yaml$/.test(each))) {
      expect(readme, name).toContain(`](services/sidecar/examples/${name})`);
      expect(seedTests, `a test/seeds or test/keychain test loads ${name}`).toContain(`${name}"`);
    }
    expect(examples).toContain("policy.yaml");
  });

  it("has no benchmark placeholders left", () => {
    expect(readme).not.toMatch(/BENCH_[A-Z]+/);
  });
});
