import { existsSync, readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { buildContext, gitFiles } from "./docker-context.js";
import { REPO_ROOT } from "./render-overlay.js";

// No Docker engine runs on the project's machines, so the image is checked by reading
// its Dockerfile, and by proving that what `npm ci --omit=dev` installs is enough to
// run each service's built entry point.

const DOCKERFILE = readFileSync(join(REPO_ROOT, "deploy", "docker", "Dockerfile"), "utf8");
const DOCKERIGNORE = readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8");
/** How the Dockerfile's stages name their base image: the build argument. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Dockerfile syntax, not a template.
const NODE_IMAGE_ARG = "${NODE_IMAGE}";

interface Stage {
  readonly name: string;
  readonly from: string;
  readonly lines: readonly string[];
}

/** The Dockerfile's stages, with line continuations joined and comments dropped. */
function stages(): Stage[] {
  const lines = DOCKERFILE.replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  const result: { name: string; from: string; lines: string[] }[] = [];
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from !== null) result.push({ from: from[1] ?? "", name: from[2] ?? "", lines: [] });
    else result.at(-1)?.lines.push(line);
  }
  return result;
}

function stage(name: string): Stage {
  const found = stages().find((candidate) => candidate.name === name);
  if (found === undefined) throw new Error(`no stage ${name}`);
  return found;
}

/** Instructions of a stage and of the stages it is built on, nearest last. */
function chain(name: string): string[] {
  const own = stage(name);
  const parent = stages().find((candidate) => candidate.name === own.from);
  return [...(parent === undefined ? [] : chain(parent.name)), ...own.lines];
}

/** What each image runs: the built JavaScript (`tsc -b` in the build stage). */
const ENTRY_POINTS = {
  "token-service": "services/token-service/dist/main.js",
  sidecar: "services/sidecar/dist/main.js",
} as const;

/** The source an entry point is compiled from: rootDir src/, outDir dist/ in each tsconfig.build.json. */
function sourceOf(entry: string): string {
  return entry.replace("/dist/", "/src/").replace(/\.js$/, ".ts");
}

/** The export condition that maps a workspace's `exports` to its sources. */
const SOURCE_CONDITION = "@latchkey/source";

/** A package each entry point is known to load, so the import walk is seen to work. */
const KNOWN_RUNTIME_PACKAGE: Readonly<Record<keyof typeof ENTRY_POINTS, string>> = {
  "token-service": "kysely",
  sidecar: "undici",
};

interface PackageJson {
  readonly name?: string;
  readonly dependencies?: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
  readonly exports?: Record<string, Record<string, string>>;
}

function readPackage(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as PackageJson;
}

/** @latchkey/* workspace packages: name → folder. */
function workspaces(): Map<string, string> {
  const map = new Map<string, string>();
  for (const group of ["packages", "services"]) {
    const dir = join(REPO_ROOT, group);
    for (const entry of existsSync(dir) ? readdirSync(dir) : []) {
      const folder = join(dir, entry);
      if (existsSync(join(folder, "package.json"))) map.set(readPackage(folder).name ?? entry, folder);
    }
  }
  return map;
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s+(type\s+)?(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm;

/**
 * Every package a service's entry point loads at run time: follows relative imports and
 * @latchkey/* workspaces (through their `exports`), skips type-only imports, and
 * returns the names of the other packages reached, with the file that imports each.
 */
function runtimePackages(entry: string): Map<string, string> {
  const packages = new Map<string, string>();
  const spaces = workspaces();
  const seen = new Set<string>();
  const queue = [resolve(REPO_ROOT, entry)];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const source = readFileSync(file, "utf8");
    for (const match of source.matchAll(IMPORT)) {
      if (match[1] !== undefined) continue;
      const specifier = match[2] ?? match[3] ?? "";
      if (specifier.startsWith(".")) {
        queue.push(resolve(dirname(file), specifier.replace(/\.js$/, ".ts")));
        continue;
      }
      const parts = specifier.split("/");
      const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? "");
      const subpath = `.${specifier.slice(name.length)}`;
      const workspace = spaces.get(name);
      if (workspace !== undefined) {
        const target = readPackage(workspace).exports?.[subpath]?.[SOURCE_CONDITION];
        if (target === undefined)
          throw new Error(`${relative(REPO_ROOT, file)}: ${specifier} is not exported`);
        queue.push(resolve(workspace, target));
      } else if (!specifier.startsWith("node:") && !builtinModules.includes(name)) {
        if (!packages.has(name)) packages.set(name, relative(REPO_ROOT, file));
      }
    }
  }
  return packages;
}

describe("the container image", () => {
  it("builds every stage on one Node.js LTS slim image pinned to a patch release", () => {
    const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(DOCKERFILE)?.[1] ?? "";
    const version = /^node:(\d+)\.\d+\.\d+-[a-z]+-slim$/.exec(image);
    expect(version, image).not.toBeNull();
    // Even major versions are the LTS lines.
    expect(Number(version?.[1]) % 2).toBe(0);
    expect(Number(version?.[1])).toBeGreaterThanOrEqual(22);
    expect(stages().filter((candidate) => candidate.from === NODE_IMAGE_ARG).length).toBeGreaterThanOrEqual(
      3,
    );
    for (const { from, name } of stages()) {
      expect(from === NODE_IMAGE_ARG || stages().some((candidate) => candidate.name === from), name).toBe(
        true,
      );
    }
  });

  it("installs production dependencies only, from the lockfile", () => {
    const install = stage("deps").lines.filter((line) => /\bnpm\b/.test(line));
    expect(install.join("\n")).toMatch(/npm ci --omit=dev/);
    expect(install.join("\n")).not.toMatch(/npm (install|i)\b/);
  });

  it.each(Object.entries(ENTRY_POINTS))(
    "has a %s target that starts its entry point as a non-root user",
    (target, entry) => {
      const instructions = chain(target);
      const entrypoint = instructions.find((line) => line.startsWith("ENTRYPOINT"));
      // Plain node on the built JavaScript: no loader, no compiler at run time.
      expect(entrypoint).toBe(`ENTRYPOINT ["node", "${entry}"]`);
      expect(existsSync(join(REPO_ROOT, sourceOf(entry)))).toBe(true);
      const service = entry.split("/").slice(0, 2).join("/");
      const build = JSON.parse(readFileSync(join(REPO_ROOT, service, "tsconfig.build.json"), "utf8"));
      expect(build.compilerOptions).toMatchObject({ rootDir: "src", outDir: "dist" });
      const user = instructions.filter((line) => line.startsWith("USER")).at(-1);
      // Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
      expect(user).toMatch(/^USER [1-9]\d*(:[1-9]\d*)?$/);
    },
  );

  it("compiles in a build stage and copies only the built workspaces into the image", () => {
    const build = stage("build").lines;
    // All dependencies (the compiler is a dev dependency), then `tsc -b` over the project references.
    expect(build.some((line) => /^RUN .*\bnpm ci --ignore-scripts\b/.test(line))).toBe(true);
    expect(
      build.some((line) =>
        /^RUN node node_modules\/typescript\/bin\/tsc -b tsconfig\.build\.json\b/.test(line),
      ),
    ).toBe(true);
    const copies = stage("deps").lines.filter((line) => line.startsWith("COPY"));
    expect(copies).toEqual([
      "COPY --from=manifests /src/ ./",
      "COPY --from=build /src/packages/ ./packages/",
      "COPY --from=build /src/services/ ./services/",
    ]);
    // What the build stage keeps of a workspace: its manifest, README, bin/ and dist/ (no src/).
    const prune = stage("build").lines.find((line) => line.includes("-exec rm -rf"));
    expect(prune).toMatch(/! -name package\.json ! -name bin ! -name dist ! -name README\.md -exec rm -rf/);
  });

  it("leaves no package manager in the final image", () => {
    const cleanup = stage("runtime").lines.find((line) => line.startsWith("RUN rm -rf"));
    for (const path of [
      "/usr/local/lib/node_modules",
      "/usr/local/bin/npm",
      "/usr/local/bin/npx",
      "/usr/local/bin/corepack",
    ]) {
      expect(cleanup, path).toContain(path);
    }
    for (const target of Object.keys(ENTRY_POINTS)) {
      // Nothing after the cleanup runs npm (it would be gone, or put back).
      expect(
        chain(target).filter((line) => /(^RUN|&&|;|\|\|)\s*(npm|npx|corepack)\b/.test(line)),
        target,
      ).toEqual([]);
    }
  });

  it("sends only manifests and sources to the build, never node_modules or local data", () => {
    const rules = DOCKERIGNORE.split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    expect(rules[0]).toBe("*");
    expect(rules.filter((rule) => rule.startsWith("!")).sort()).toEqual(
      [
        "!package-lock.json",
        "!package.json",
        "!packages/",
        "!services/",
        "!tsconfig.build.json",
        "!tsconfig.json",
      ].sort(),
    );
    expect(rules).toContain("**/node_modules");
    // The build stage compiles from sources; no local dist/ reaches it.
    expect(rules).toContain("**/dist");
    expect(rules).toContain("**/.latchkey");
  });

  it("copies no test, fixture, test support or demo file into the build", () => {
    const copied = buildContext(DOCKERIGNORE, gitFiles());
    expect(copied.length).toBeGreaterThan(20);
    expect(copied).toContain("services/sidecar/src/sidecar.ts");
    expect(copied).toContain("services/token-service/src/main.ts");
    const unwanted = copied.filter((file) =>
      /\.test\.ts$|\.fixture\.ts$|\.test-support\.ts$|(^|\/)(test-support|demo|test)\//.test(file),
    );
    expect(unwanted).toEqual([]);
  });

  it.each(Object.entries(ENTRY_POINTS))("runs %s on production dependencies alone", (target, entry) => {
    const root = readPackage(REPO_ROOT);
    const production = new Set(Object.keys(root.dependencies ?? {}));
    for (const folder of workspaces().values()) {
      for (const name of Object.keys(readPackage(folder).dependencies ?? {})) production.add(name);
    }
    // The image runs built JavaScript: tsx (and the compiler) are development tools only.
    expect(production.has("tsx")).toBe(false);
    expect(production.has("typescript")).toBe(false);
    const packages = runtimePackages(sourceOf(entry));
    expect([...packages.keys()]).toContain(KNOWN_RUNTIME_PACKAGE[target as keyof typeof ENTRY_POINTS]);
    const missing = [...packages]
      .filter(([name]) => !production.has(name))
      .map(([name, file]) => `${name} (imported by ${file})`);
    expect(missing).toEqual([]);
  });
});
