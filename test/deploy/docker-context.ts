import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./render-overlay.js";

/**
 * The files a `docker build` of the repository would send, by the rules of a
 * `.dockerignore` (the subset Docker documents and ours uses: `*`, `?`, `**`,
 * `!` exceptions, the last matching rule winning, a rule on a folder covering
 * everything below it). No Docker engine runs here, so this is how the tests
 * see into the build context.
 */
export function buildContext(dockerignore: string, files: readonly string[]): string[] {
  const rules = dockerignore
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const exception = line.startsWith("!");
      const pattern = (exception ? line.slice(1) : line).replace(/^\/+/, "").replace(/\/+$/, "");
      return { exception, regex: patternRegex(pattern) };
    });
  return files.filter((file) => {
    let included = true;
    for (const rule of rules) if (rule.regex.test(file)) included = rule.exception;
    return included;
  });
}

function patternRegex(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i] as string;
    if (char === "*" && pattern[i + 1] === "*") {
      i++;
      if (pattern[i + 1] === "/") {
        i++;
        source += "(?:.*/)?";
      } else source += ".*";
    } else if (char === "*") source += "[^/]*";
    else if (char === "?") source += "[^/]";
    else source += char.replace(/[\\^$.+()[\]{}|]/g, "\\$&");
  }
  // A folder's rule covers what is inside it.
  return new RegExp(`^${source}(?:/.*)?$`);
}

/**
 * The repository's files as git sees them: tracked, plus new ones it does not ignore. Outside a
 * git checkout (the mutation check's copy), every file but dependencies and local data.
 */
export function gitFiles(): string[] {
  try {
    const output = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return output.split("\n").filter((file) => file !== "");
  } catch {
    return walk(REPO_ROOT, "");
  }
}

const NOT_SOURCES = new Set(["node_modules", ".git", ".tmp", ".latchkey"]);

function walk(root: string, prefix: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(join(root, prefix), { withFileTypes: true })) {
    if (NOT_SOURCES.has(entry.name)) continue;
    const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) files.push(...walk(root, path));
    else files.push(path);
  }
  return files;
}
