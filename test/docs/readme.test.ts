// The README's configuration tables name every setting the services read, and
// the commands it documents exist.
import { readFileSync } from "node:fs";
import { SIDECAR_ENV } from "@latchkey/sidecar";
import { TOKEN_SERVICE_ENV } from "@latchkey/token-service";
import { describe, expect, it } from "vitest";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const scripts = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"))
  .scripts as Record<string, string>;

function tableSection(title: string): string {
  const start = readme.indexOf(title);
  expect(start, `README section ${title}`).toBeGreaterThan(-1);
  const end = readme.indexOf("\n### ", start + title.length);
  return readme.slice(start, end === -1 ? readme.indexOf("\n## ", start) : end);
}

describe("README", () => {
  it("documents every token-service setting with its variable and file key", () => {
    const table = tableSection("### token-service");
    for (const [field, variable] of Object.entries(TOKEN_SERVICE_ENV)) {
      expect(table, variable).toContain(`\`${variable}\``);
      expect(table, field).toContain(`\`${field}\``);
    }
  });

  it("documents every sidecar setting with its variable and file key", () => {
    const table = tableSection("### sidecar");
    for (const [field, variable] of Object.entries(SIDECAR_ENV)) {
      expect(table, variable).toContain(`\`${variable}\``);
      expect(table, field).toContain(`\`${field}\``);
    }
  });

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
