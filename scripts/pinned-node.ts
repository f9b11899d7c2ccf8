// The Node.js release this repository runs and tests on: the exact version of the `node` devDependency in
// the root package.json. That npm package brings the binary, so `npm ci` installs the runtime too, and npm
// scripts (and `npx`) find it first on PATH through node_modules/.bin, whatever Node the machine has.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file lives in `scripts/`). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The pinned Node.js release, as `26.10.0`, and its major version. */
export interface PinnedNode {
  readonly version: string;
  readonly major: number;
}

/** Reads the pinned release from the root package.json; throws when it is not an exact version. */
export function readPinnedNode(root: string = REPO_ROOT): PinnedNode {
  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    devDependencies?: Record<string, string>;
  };
  const version = manifest.devDependencies?.node ?? "";
  const match = /^(\d+)\.\d+\.\d+$/.exec(version);
  if (match === null) {
    throw new Error(
      `package.json: devDependencies.node must be an exact version such as 26.10.0, not "${version}"`,
    );
  }
  return { version, major: Number(match[1]) };
}

/**
 * Throws unless this process runs on the pinned major: tests on another Node prove nothing about the one
 * we ship. The usual cause is running a tool's bin directly, so its `#!/usr/bin/env node` found the
 * system Node; run it through npm (`npm test`, `npx vitest`) after `npm ci`.
 */
export function assertPinnedNode(root: string = REPO_ROOT): PinnedNode {
  const pinned = readPinnedNode(root);
  const running = process.versions.node;
  if (Number(running.split(".")[0]) !== pinned.major) {
    throw new Error(
      `running on Node ${running} (${process.execPath}), but this repository pins Node ${pinned.version}: ` +
        "run `npm ci`, then use npm scripts or npx, which put node_modules/.bin/node first on PATH",
    );
  }
  return pinned;
}
