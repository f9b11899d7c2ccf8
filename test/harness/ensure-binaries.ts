import { accessSync, constants, existsSync, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";
import { runCommand } from "./run-command.js";

/** Where the servers the tests start live on this machine. */
export interface HarnessBinaries {
  /** Folder holding `initdb` and `pg_ctl`, e.g. `/usr/lib/postgresql/15/bin`. */
  postgresBinDir: string;
  /** Absolute path of `nats-server`. */
  natsServer: string;
}

const POSTGRES_ROOT = "/usr/lib/postgresql";
const INSTALL_COMMAND =
  "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql nats-server";

/**
 * Finds the newest PostgreSQL server binaries. Debian keeps them under `/usr/lib/postgresql/<major>/bin`,
 * off PATH, so a glob over the version folders is the only reliable way.
 */
export function findPostgresBinDir(): string | undefined {
  if (!existsSync(POSTGRES_ROOT)) return undefined;
  const versions = readdirSync(POSTGRES_ROOT)
    .filter((name) => /^\d+(\.\d+)?$/.test(name))
    .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  for (const version of versions) {
    const bin = join(POSTGRES_ROOT, version, "bin");
    if (isExecutable(join(bin, "initdb")) && isExecutable(join(bin, "pg_ctl"))) return bin;
  }
  return undefined;
}

/** Finds `nats-server` on PATH, or in `/usr/sbin` where Debian puts it (root's PATH may lack it). */
export function findNatsServer(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/bin", "/usr/bin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, "nats-server");
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

let installing: Promise<void> | undefined;

/**
 * Returns the PostgreSQL and NATS binaries, installing the missing Debian packages first when this
 * process is root and has apt-get (as on CI and the dev machines). Anywhere else it throws an error
 * naming the command to run, rather than installing behind the user's back.
 */
export async function ensureBinaries(): Promise<HarnessBinaries> {
  let found = locate();
  if (found.missing.length > 0) {
    if (!canInstall()) {
      throw new Error(
        `the tests need ${found.missing.join(" and ")}, which ${found.missing.length > 1 ? "are" : "is"} not installed; run as root:\n  ${INSTALL_COMMAND}`,
      );
    }
    // One install per process even when several harnesses ask at once.
    installing ??= install(found.missing);
    await installing;
    found = locate();
    if (found.missing.length > 0) {
      throw new Error(
        `installed ${found.missing.join(" and ")} but cannot find it; try:\n  ${INSTALL_COMMAND}`,
      );
    }
  }
  return { postgresBinDir: found.postgresBinDir as string, natsServer: found.natsServer as string };
}

/** Finds `nginx` on PATH, or in `/usr/sbin` where Debian puts it. */
export function findNginx(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"];
  for (const dir of dirs) {
    if (dir !== "" && isExecutable(join(dir, "nginx"))) return join(dir, "nginx");
  }
  return undefined;
}

let installingNginx: Promise<void> | undefined;

/**
 * Returns Debian's nginx (the forward-auth tests run the shipped example config), installing it
 * the same way as the servers above; anywhere else it throws naming the command to run.
 */
export async function ensureNginx(): Promise<string> {
  const found = findNginx();
  if (found !== undefined) return found;
  const command = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx";
  if (!canInstall()) throw new Error(`nginx is not installed; run as root:\n  ${command}`);
  installingNginx ??= install(["nginx"]);
  await installingNginx;
  const installed = findNginx();
  if (installed === undefined) throw new Error(`installed nginx but cannot find it; try:\n  ${command}`);
  return installed;
}

function locate() {
  const postgresBinDir = findPostgresBinDir();
  const natsServer = findNatsServer();
  const missing: string[] = [];
  if (postgresBinDir === undefined) missing.push("postgresql");
  if (natsServer === undefined) missing.push("nats-server");
  return { postgresBinDir, natsServer, missing };
}

function canInstall(): boolean {
  return process.getuid?.() === 0 && findOnPath("apt-get") !== undefined;
}

async function install(packages: readonly string[]): Promise<void> {
  process.stderr.write(`test harness: installing ${packages.join(" ")} with apt-get\n`);
  await runCommand("apt-get", ["update"], { inherit: true });
  // Only the missing packages: naming an installed one would upgrade it as a side effect.
  await runCommand("apt-get", ["install", "-y", ...packages], {
    inherit: true,
    env: { DEBIAN_FRONTEND: "noninteractive" },
  });
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
