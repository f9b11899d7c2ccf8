// A project outside the repository with workspace packages installed from their `npm pack` tarballs
// (third-party dependencies from the registry, or the npm cache when it has them): what a user of a
// published package gets.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { REPO_ROOT } from "../deploy/render-overlay.js";
import { runCommand } from "../harness/run-command.js";

/** A user's project: its folder, and how to remove it. */
export interface PackedProject {
  readonly dir: string;
  remove(): void;
}

/**
 * Builds the workspaces (incremental: about a second after `npm run build`), packs `packages` and
 * installs the tarballs into a fresh ES-module project holding `files` (name → text).
 *
 * @example
 * ```ts
 * const project = await packedProject("verifier-user", ["@latchkey/verifier", …], { "verify.mjs": SCRIPT });
 * ```
 */
export async function packedProject(
  name: string,
  packages: readonly string[],
  files: Readonly<Record<string, string>>,
): Promise<PackedProject> {
  const dir = mkdtempSync(join(tmpdir(), `latchkey-${name}-`));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    const tarballs = join(dir, "tarballs");
    mkdirSync(tarballs);
    await runCommand("npm", ["run", "--silent", "build"], { cwd: REPO_ROOT });
    await runCommand(
      "npm",
      [
        "pack",
        "--silent",
        "--pack-destination",
        tarballs,
        ...packages.flatMap((each) => ["--workspace", each]),
      ],
      { cwd: REPO_ROOT },
    );
    writeFileSync(
      join(dir, "package.json"),
      `${JSON.stringify({ name, private: true, type: "module" }, null, 2)}\n`,
    );
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      writeFileSync(join(dir, file), text);
    }
    const packed = readdirSync(tarballs).map((file) => join(tarballs, file));
    await runCommand("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", ...packed], {
      cwd: dir,
    });
    return { dir, remove };
  } catch (error) {
    remove();
    throw error;
  }
}

/** The files an installed package ships, relative to its folder. */
export function installedFiles(project: PackedProject, packageName: string): string[] {
  return readdirSync(join(project.dir, "node_modules", ...packageName.split("/")), {
    recursive: true,
    encoding: "utf8",
  });
}
