import { execFileSync } from "node:child_process";
import { chmod, chown, copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { ensureBinaries } from "./ensure-binaries.js";
import { findFreePort } from "./free-port.js";
import { runCommand } from "./run-command.js";

/** A running throw-away PostgreSQL server. */
export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/latchkey_test`, trust auth, no password. */
  url: string;
  /** Stops the server (`pg_ctl -m fast stop`) and deletes its data directory. */
  stop(): Promise<void>;
  /**
   * Crashes the server (`pg_ctl -m immediate stop`: every backend is killed, no checkpoint, so
   * the next start recovers from the WAL). Clients see their connections cut, then refused.
   */
  crash(): Promise<void>;
  /** Starts a crashed server again on the same port and data. */
  start(): Promise<void>;
}

/** Options of {@link startPostgres}. */
export interface StartPostgresOptions {
  /**
   * Serve TLS only: the server's certificate and key (PEM), and the CA that
   * signed them, which the harness itself trusts (`sslmode=verify-full`).
   * Cleartext TCP connections are rejected (`hostnossl … reject`).
   */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
}

/** The database every server starts with. */
export const TEST_DATABASE = "latchkey_test";

/**
 * Starts a PostgreSQL server in a fresh temporary directory on a free port, tuned for tests
 * (`fsync=off`), and creates the {@link TEST_DATABASE} database on it.
 *
 * PostgreSQL refuses to run as root, and CI runs as root, so then the directory is handed to the
 * `postgres` user and the server runs through `runuser -u postgres --`.
 *
 * @example
 * ```ts
 * const server = await startPostgres();
 * try {
 *   const db = await createDatabase(server.url, "orders_test");
 * } finally {
 *   await server.stop();
 * }
 * ```
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const { postgresBinDir } = await ensureBinaries();
  const dir = await mkdtemp(join(tmpdir(), "latchkey-pg-"));
  const dataDir = join(dir, "data");
  const asPostgres = process.getuid?.() === 0;
  const run = (binary: string, args: string[]) => {
    const path = join(postgresBinDir, binary);
    return asPostgres
      ? runCommand("runuser", ["-u", "postgres", "--", path, ...args])
      : runCommand(path, args);
  };

  let started = false;
  try {
    if (asPostgres) {
      const { uid, gid } = postgresUser();
      await chown(dir, uid, gid);
    }
    await run("initdb", ["-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync"]);
    const port = await findFreePort();
    const tlsOptions: string[] = [];
    if (options.tls) {
      // PostgreSQL wants its key owned by its own user and private.
      const cert = join(dir, "server.crt");
      const key = join(dir, "server.key");
      await copyFile(options.tls.certFile, cert);
      await copyFile(options.tls.keyFile, key);
      await chmod(key, 0o600);
      if (asPostgres) {
        const { uid, gid } = postgresUser();
        await chown(cert, uid, gid);
        await chown(key, uid, gid);
      }
      await writeFile(
        join(dataDir, "pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
      );
      tlsOptions.push("-c ssl=on", `-c ssl_cert_file=${cert}`, `-c ssl_key_file=${key}`);
    }
    const serverOptions = [
      `-p ${port}`,
      `-k ${dir}`,
      "-c listen_addresses=127.0.0.1",
      "-c fsync=off",
      "-c max_connections=200",
      ...tlsOptions,
    ].join(" ");
    const startServer = async () => {
      try {
        await run("pg_ctl", ["-D", dataDir, "-o", serverOptions, "-l", join(dir, "log"), "-w", "start"]);
      } catch (error) {
        const log = await readFile(join(dir, "log"), "utf8").catch(() => "");
        throw new Error(`PostgreSQL did not start:\n${log}`, { cause: error });
      }
    };
    await startServer();
    started = true;

    const stopNow = () => {
      // A run killed before teardown must not leave a server behind.
      try {
        const path = join(postgresBinDir, "pg_ctl");
        const args = ["-D", dataDir, "-m", "immediate", "stop"];
        if (asPostgres) execFileSync("runuser", ["-u", "postgres", "--", path, ...args], { stdio: "ignore" });
        else execFileSync(path, args, { stdio: "ignore" });
      } catch {
        // Already stopped.
      }
    };
    process.once("exit", stopNow);

    const tlsQuery = options.tls
      ? `?sslmode=verify-full&sslrootcert=${encodeURIComponent(options.tls.caFile)}`
      : "";
    const url = await createDatabase(
      `postgres://postgres@127.0.0.1:${port}/postgres${tlsQuery}`,
      TEST_DATABASE,
    );
    let stopped: Promise<void> | undefined;
    return {
      url,
      stop() {
        stopped ??= (async () => {
          process.off("exit", stopNow);
          await run("pg_ctl", ["-D", dataDir, "-m", "fast", "stop"]);
          await rm(dir, { recursive: true, force: true });
        })();
        return stopped;
      },
      async crash() {
        await run("pg_ctl", ["-D", dataDir, "-m", "immediate", "stop"]);
      },
      start: startServer,
    };
  } catch (error) {
    if (started) await run("pg_ctl", ["-D", dataDir, "-m", "immediate", "stop"]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Creates an empty database named `name` on the server behind `url` and returns the URL of the new
 * database. Tests that change schema or data use one each, so they cannot see each other.
 *
 * @example
 * ```ts
 * const url = await createDatabase(server.url, "keys_test_1");
 * ```
 */
export async function createDatabase(url: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`database name ${JSON.stringify(name)} must be a lower-case SQL identifier`);
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  const databaseUrl = new URL(url);
  databaseUrl.pathname = `/${name}`;
  return databaseUrl.toString();
}

function postgresUser(): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch (error) {
    throw new Error("running as root needs a `postgres` user (the Debian postgresql package creates it)", {
      cause: error,
    });
  }
}
