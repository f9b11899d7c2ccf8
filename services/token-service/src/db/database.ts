import { existsSync, mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { tracingEnabled } from "@latchkey/telemetry";
import { Kysely, PGliteDialect, PostgresDialect } from "kysely";
import pg from "pg";
import { recordQuerySpan } from "./query-spans.js";
import type { Database } from "./tables.js";

/** A database handle plus the LISTEN side channel the outbox publisher wakes on. */
export interface DatabaseHandle {
  readonly db: Kysely<Database>;
  readonly kind: "postgres" | "pglite";
  /** Calls `onNotify` on every NOTIFY on `channel`; resolves once listening. */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** PostgreSQL URL; when unset an embedded PGlite database is opened in `dataDir`. */
  readonly databaseUrl?: string | undefined;
  /** Folder of the embedded database, or `memory://` for a throw-away one. */
  readonly dataDir: string;
  /** Pool size for PostgreSQL. */
  readonly poolMax: number;
  /** Called when an idle pooled client errors (the pool replaces it). */
  readonly onPoolError?: (error: Error) => void;
  /**
   * CA bundle (PEM) for PostgreSQL: connect over TLS and check the server's
   * chain and host name (libpq's `sslmode=verify-full`), pool and LISTEN
   * connection alike.
   */
  readonly ca?: Buffer | undefined;
}

/**
 * Opens PostgreSQL (pg pool) or the embedded PGlite database behind one
 * kysely interface; the same migrations run on both.
 *
 * @example
 * ```ts
 * const handle = await openDatabase({ databaseUrl: process.env.DATABASE_URL, dataDir: ".latchkey", poolMax: 10 });
 * ```
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  if (options.databaseUrl) {
    return openPostgres(
      postgresConnection(options.databaseUrl, options.ca),
      options.poolMax,
      options.onPoolError,
    );
  }
  return openPGlite(options.dataDir);
}

/** What pg needs to open one connection: the URL, and TLS settings when a CA is given. */
type PostgresConnection = Pick<pg.ClientConfig, "connectionString" | "ssl">;

// pg lets TLS parameters in the URL override the `ssl` option, so with a CA of
// our own they are taken out of the URL; the config schema has already refused
// an sslmode weaker than verify-full next to a CA file.
const URL_TLS_PARAMETERS = ["ssl", "sslmode", "sslrootcert", "sslcert", "sslkey", "uselibpqcompat"];

function postgresConnection(url: string, ca: Buffer | undefined): PostgresConnection {
  if (ca === undefined) return { connectionString: url };
  const parsed = new URL(url);
  for (const name of URL_TLS_PARAMETERS) parsed.searchParams.delete(name);
  // rejectUnauthorized plus Node's default checkServerIdentity: chain and host name (verify-full).
  return { connectionString: parsed.toString(), ssl: { ca, rejectUnauthorized: true } };
}

function openPostgres(
  connection: PostgresConnection,
  poolMax: number,
  onPoolError?: (error: Error) => void,
): DatabaseHandle {
  const pool = new pg.Pool({ ...connection, max: poolMax, connectionTimeoutMillis: 5_000 });
  pool.on("error", (error) => onPoolError?.(error));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), ...queryLog() });
  const listeners: pg.Client[] = [];
  return {
    db,
    kind: "postgres",
    async listen(channel, onNotify) {
      // A dedicated client: LISTEN belongs to a session, and pooled clients are shared.
      const client = new pg.Client(connection);
      client.on("error", (error) => onPoolError?.(error));
      await client.connect();
      client.on("notification", (message) => {
        if (message.channel === channel) onNotify();
      });
      await client.query(`listen ${pg.escapeIdentifier(channel)}`);
      listeners.push(client);
      return async () => {
        await client.end().catch(() => {});
      };
    },
    async close() {
      await Promise.all(listeners.map((client) => client.end().catch(() => {})));
      await db.destroy();
    },
  };
}

async function openPGlite(dataDir: string): Promise<DatabaseHandle> {
  const inMemory = dataDir.startsWith("memory://");
  let pglite: PGlite;
  if (inMemory) {
    pglite = await PGlite.create();
  } else {
    mkdirSync(dataDir, { recursive: true });
    const path = `${dataDir}/pgdata`;
    if (existsSync(`${path}/PG_VERSION`)) {
      pglite = await PGlite.create(path);
    } else {
      // initdb straight onto disk takes ~2x longer than in memory followed by
      // a dump and a restore into the folder (measured 7.6 s vs 3.9 s here), and
      // `npm start` promises a running stack in a few seconds.
      const scratch = await PGlite.create();
      const image = await scratch.dumpDataDir("none");
      await scratch.close();
      pglite = await PGlite.create(path, { loadDataDir: image });
    }
  }
  // kysely's own PGlite dialect: one connection, queued by kysely; db.destroy() closes PGlite.
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }), ...queryLog() });
  return {
    db,
    kind: "pglite",
    async listen(channel, onNotify) {
      const unsubscribe = await pglite.listen(channel, () => onNotify());
      return unsubscribe;
    },
    async close() {
      await db.destroy();
    },
  };
}

/** Kysely's `log` option when tracing is on: a span per query (`query-spans.ts`); nothing otherwise. */
function queryLog(): { log?: typeof recordQuerySpan } {
  return tracingEnabled() ? { log: recordQuerySpan } : {};
}
