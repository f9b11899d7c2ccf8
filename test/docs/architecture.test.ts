// docs/architecture.md is read with the repository alone: it points at nothing outside it.
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url);
const page = readFileSync(new URL("docs/architecture.md", root), "utf8");

describe("docs/architecture.md", () => {
  it("names no path outside the repository", () => {
    expect(page).not.toMatch(/\.\.\//); // a sibling folder, such as a shared design note
    expect(page).not.toMatch(/`(?:\/(?:work|home|tmp|usr|etc)|~)\//); // a machine's file system
    expect(page).not.toMatch(/https?:\/\//); // another repository or site
  });

  it("links only to files in the repository", () => {
    for (const [, target = ""] of page.matchAll(/\]\(([^)#]+)[^)]*\)/g)) {
      expect(target, target).not.toMatch(/^[a-z]+:/);
      expect(existsSync(new URL(target, new URL("docs/", root))), target).toBe(true);
    }
  });

  it("names files of the repository in its 'Where things happen' table", () => {
    const table = page.slice(page.indexOf("## Where things happen"), page.indexOf("## Decisions"));
    const paths = [...table.matchAll(/`((?:services|packages)\/[^`]+\.ts)`/g)].map((match) => match[1] ?? "");
    expect(paths.length).toBeGreaterThan(5);
    for (const path of paths) expect(existsSync(new URL(path, root)), path).toBe(true);
  });
});
