// The mutation check: applies each breakage listed in test/deploy/mutations/*.ts to a copy
// of the repository and runs the deploy tests there, which must fail for every one. A
// suite that passes on broken manifests proves nothing; this keeps it honest.
//
//   npm run test:mutations                 every mutation
//   npm run test:mutations -- probe nats   only those whose name contains a word given
//
// The copy is a temporary directory with deploy/, test/, services/, packages/ and the
// root's config files, and a symlink to node_modules. One PostgreSQL and one NATS serve
// every run (vitest's global setup takes DATABASE_URL and NATS_URL), and vitest stops at
// the first failure, so a caught mutation costs a few seconds.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { startNats } from "../harness/nats.js";
import { startPostgres } from "../harness/postgres.js";
import type { Mutation } from "./mutations/mutation.js";

const REPO_ROOT = resolve(import.meta.dirname, "../..");
const MUTATIONS_DIR = join(import.meta.dirname, "mutations");
const COPIED_DIRS = ["deploy", "test", "services", "packages"];
const COPIED_FILES = ["package.json", "tsconfig.json", "vitest.config.ts", ".dockerignore"];

/** Every mutation of every file in test/deploy/mutations/ (mutation.ts holds the type). */
async function loadMutations(): Promise<(Mutation & { source: string })[]> {
  const all: (Mutation & { source: string })[] = [];
  const files = readdirSync(MUTATIONS_DIR)
    .filter((file) => file.endsWith(".ts") && file !== "mutation.ts")
    .sort();
  for (const file of files) {
    const module = (await import(pathToFileURL(join(MUTATIONS_DIR, file)).href)) as {
      mutations?: Mutation[];
    };
    if (!Array.isArray(module.mutations)) throw new Error(`${file} exports no \`mutations\` array`);
    for (const mutation of module.mutations) all.push({ ...mutation, source: basename(file) });
  }
  return all;
}

function copyRepository(): string {
  const copy = mkdtempSync(join(tmpdir(), "latchkey-mutations-"));
  const skip = (path: string) => /[/\\](node_modules|\.tmp|\.latchkey)([/\\]|$)/.test(path);
  for (const dir of COPIED_DIRS) {
    cpSync(join(REPO_ROOT, dir), join(copy, dir), { recursive: true, filter: (source) => !skip(source) });
  }
  for (const file of COPIED_FILES) cpSync(join(REPO_ROOT, file), join(copy, file));
  symlinkSync(join(REPO_ROOT, "node_modules"), join(copy, "node_modules"), "dir");
  return copy;
}

interface RunResult {
  readonly passed: boolean;
  readonly failedTests: string[];
  readonly seconds: number;
  readonly output: string;
}

function runDeployTests(copy: string, env: Record<string, string>): RunResult {
  const started = performance.now();
  const report = join(copy, ".tmp", "mutation-vitest.json");
  rmSync(report, { force: true });
  const result = spawnSync(
    join(copy, "node_modules", ".bin", "vitest"),
    ["run", "test/deploy", "--bail=1", "--reporter=dot", "--reporter=json", `--outputFile.json=${report}`],
    { cwd: copy, env: { ...process.env, ...env, CI: "1" }, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  let failedTests: string[] = [];
  try {
    const json = JSON.parse(readFileSync(report, "utf8")) as {
      testResults: { assertionResults: { status: string; fullName: string }[] }[];
    };
    failedTests = json.testResults
      .flatMap((file) => file.assertionResults)
      .filter((test) => test.status === "failed")
      .map((test) => test.fullName);
  } catch {
    // No report: vitest failed before running tests (a file that does not load); the
    // exit status still tells.
  }
  return {
    passed: result.status === 0,
    failedTests,
    seconds: (performance.now() - started) / 1000,
    output: `${result.stdout}${result.stderr}`,
  };
}

async function main(filters: string[]): Promise<number> {
  const started = performance.now();
  const all = await loadMutations();
  const selected =
    filters.length === 0 ? all : all.filter((m) => filters.some((word) => m.name.includes(word)));
  if (selected.length === 0) throw new Error(`no mutation matches ${filters.join(", ")}`);
  const [postgres, nats] = await Promise.all([startPostgres(), startNats()]);
  const copy = copyRepository();
  const env = { DATABASE_URL: postgres.url, NATS_URL: nats.url };
  const survivors: string[] = [];
  try {
    // Unbroken, the suite must pass in the copy, or every mutation would look caught.
    const baseline = runDeployTests(copy, env);
    console.log(`baseline: ${baseline.passed ? "passes" : "FAILS"} (${baseline.seconds.toFixed(1)} s)`);
    if (!baseline.passed) {
      console.log(baseline.output.slice(-4000));
      return 1;
    }
    for (const mutation of selected) {
      const path = join(copy, mutation.file);
      const original = readFileSync(path, "utf8");
      const broken = mutation.apply(original);
      if (broken === original) throw new Error(`${mutation.source}: "${mutation.name}" changes nothing`);
      writeFileSync(path, broken);
      try {
        const run = runDeployTests(copy, env);
        const verdict = run.passed ? "SURVIVED" : "caught";
        const by = run.failedTests.slice(0, 2).join(" | ") || "(the suite failed before a test did)";
        console.log(
          `${verdict.padEnd(8)} ${mutation.name} [${mutation.source}] (${run.seconds.toFixed(1)} s)`,
        );
        if (run.passed) survivors.push(mutation.name);
        else console.log(`         by: ${by}`);
      } finally {
        writeFileSync(path, original);
      }
    }
  } finally {
    rmSync(copy, { recursive: true, force: true });
    await Promise.allSettled([postgres.stop(), nats.dispose()]);
  }
  const total = ((performance.now() - started) / 1000).toFixed(0);
  console.log(
    `${selected.length - survivors.length} of ${selected.length} mutations caught in ${total} s` +
      (survivors.length > 0 ? `; survived: ${survivors.join("; ")}` : ""),
  );
  return survivors.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
