import { existsSync, mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { tracingEnabled } from "@latchkey/telemetry";
import { Kysely, PGliteDialect, PostgresDialect } from "kysely";
import pg from "pg";
import { preparingPool } from "./prepared-statements.js";
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
  /** Called when a pooled client's connection fails, idle or checked out (the pool replaces it). */
  readonly onPoolError?: (error: Error) => void;
  /**
   * CA bundle (PEM) for PostgreSQL: connect over TLS and check the server's
   * chain and host name (libpq's `sslmode=verify-full`), pool and LISTEN
   * connection alike.
   */
  readonly ca?: Buffer | undefined;
  /**
   * Run the queries marked with {@link prepared} as named prepared statements
   * (parsed and planned once per pooled connection). Default true; turn off
   * behind a pooler that cannot keep them (PgBouncer in transaction mode
   * before 1.21, or without `max_prepared_statements`).
   */
  readonly preparedStatements?: boolean | undefined;
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
      options.preparedStatements ?? true,
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
  onPoolError: ((error: Error) => void) | undefined,
  preparedStatements: boolean,
): DatabaseHandle {
  const pool = new pg.Pool({ ...connection, max: poolMax, connectionTimeoutMillis: 5_000 });
  // pg emits "error" on a client whose connection ends while no query runs on it, and pg-pool
  // listens only while the client is idle: a client checked out between two statements (a
  // transaction waiting on NATS) would crash the process when PostgreSQL goes away. So every
  // client gets a listener of its own for its whole life; its owner still sees the failure on
  // its next query, and the pool drops it on release. The pool's own "error" repeats the idle
  // clients' errors, already reported.
  pool.on("connect", (client) => client.on("error", (error) => onPoolError?.(error)));
  pool.on("error", () => {});
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: preparedStatements ? preparingPool(pool) : pool }),
    ...queryLog(),
  });
  const listeners: Array<() => Promise<void>> = [];
  return {
    db,
    kind: "postgres",
    async listen(channel, onNotify) {
      const listener = await listenWithReconnect(connection, channel, onNotify, onPoolError);
      listeners.push(listener);
      return listener;
    },
    async close() {
      await Promise.all(listeners.map((stop) => stop()));
      await db.destroy();
    },
  };
}

/** Longest pause between attempts to re-open the LISTEN connection. */
const LISTEN_MAX_RETRY_MS = 5_000;

/**
 * LISTENs on `channel` on a dedicated client (LISTEN belongs to a session, and pooled clients are
 * shared). When its connection ends (PostgreSQL restarted, a failover, a network cut) it opens a
 * new one, LISTENs again and calls `onNotify` once, since notifications sent meanwhile are lost;
 * without that, every replica would fall back to polling for the rest of its life. The first
 * connection's failure is thrown (start-up reports it); later ones are retried with backoff.
 * Resolves to a function that stops listening.
 */
async function listenWithReconnect(
  connection: PostgresConnection,
  channel: string,
  onNotify: () => void,
  onError: ((error: Error) => void) | undefined,
): Promise<() => Promise<void>> {
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: ReturnType<typeof setTimeout> | undefined;

  async function open(): Promise<void> {
    const opening = new pg.Client(connection);
    opening.on("error", (error) => onError?.(error));
    opening.on("end", () => {
      if (client === opening) reopen(0);
    });
    try {
      await opening.connect();
      opening.on("notification", (message) => {
        if (message.channel === channel) onNotify();
      });
      await opening.query(`listen ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      await opening.end().catch(() => {});
      throw error;
    }
    if (stopped) {
      await opening.end().catch(() => {});
      return;
    }
    client = opening;
  }

  function reopen(attempt: number): void {
    client = undefined;
    if (stopped) return;
    const delay = Math.min(LISTEN_MAX_RETRY_MS, 100 * 2 ** Math.min(attempt, 6));
    retry = setTimeout(() => {
      open().then(
        () => {
          if (!stopped) onNotify();
        },
        (error: unknown) => {
          onError?.(error instanceof Error ? error : new Error(String(error)));
          reopen(attempt + 1);
        },
      );
    }, delay);
    retry.unref();
  }

  await open();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    const current = client;
    client = undefined;
    await current?.end().catch(() => {});
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
