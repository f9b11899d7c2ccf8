// Fails when packages/proto/src/gen is not what `buf generate` makes from proto/ today.
//
// It generates into a temporary folder and compares, rather than regenerating in place and asking git,
// so running it never rewrites the working tree. On a fresh clone (CI) the tree is the commit, so this
// checks the commit; locally it also fails on generated files git does not track yet, which CI would miss.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const GEN_DIR = "packages/proto/src/gen";
const HINT = "generated code is out of date with proto/: run npm run generate and commit";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const scratch = mkdtempSync(join(tmpdir(), "latchkey-gen-"));

try {
  // buf.gen.yaml names `local: protoc-gen-es`, found through PATH like buf itself.
  const bin = join(root, "node_modules", ".bin");
  const generated = spawnSync("buf", ["generate", "--output", scratch], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ""}` },
  });
  if (generated.error !== undefined || generated.status !== 0) {
    fail(`buf generate failed: ${generated.error?.message ?? ""}\n${generated.stdout}${generated.stderr}`);
  }

  const expected = listFiles(join(scratch, GEN_DIR));
  const actual = listFiles(join(root, GEN_DIR));
  const problems: string[] = [];
  for (const file of expected.keys()) {
    if (!actual.has(file)) problems.push(`missing:  ${GEN_DIR}/${file}`);
    else if (!expected.get(file)?.equals(actual.get(file) as Buffer))
      problems.push(`differs:  ${GEN_DIR}/${file}`);
  }
  for (const file of actual.keys()) {
    if (!expected.has(file)) problems.push(`stale:    ${GEN_DIR}/${file}`);
  }
  problems.push(...untrackedFiles().map((file) => `untracked: ${file}`));

  if (problems.length > 0) fail(`${problems.join("\n")}\n${HINT}`);
  console.log(`${GEN_DIR} is up to date with proto/`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

function listFiles(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  if (!existsSync(dir)) return files;
  for (const file of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    const path = join(dir, file);
    if (statSync(path).isFile()) files.set(file, readFileSync(path));
  }
  return files;
}

function untrackedFiles(): string[] {
  const git = spawnSync("git", ["ls-files", "--others", "--exclude-standard", "--", GEN_DIR], {
    cwd: root,
    encoding: "utf8",
  });
  // Outside a git checkout (an unpacked tarball) there is nothing to commit, so nothing to report.
  if (git.status !== 0) return [];
  return git.stdout.split("\n").filter((line) => line !== "");
}

function fail(message: string): never {
  rmSync(scratch, { recursive: true, force: true });
  console.error(message);
  process.exit(1);
}
