import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import {
  type Compilable,
  type CompiledQuery,
  Kysely,
  PGliteDialect,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
} from "kysely";
import pg from "pg";
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
  /**
   * Run the queries marked with {@link prepared} as named prepared statements
   * (parsed and planned once per pooled connection). Default true; turn off
   * behind a pooler that cannot keep them (PgBouncer in transaction mode
   * before 1.21, or without `max_prepared_statements`).
   */
  readonly preparedStatements?: boolean | undefined;
}

// SQL text → statement name, for the hot fixed-shape queries marked with
// `prepared`. Bounded: only code registers texts, and only fixed-shape ones.
const PREPARED_MAX = 64;
const preparedNames = new Map<string, string>();

/**
 * Compiles a fixed-shape query (its SQL text the same on every call; only
 * parameters vary) and marks its text to run as a named prepared statement
 * on PostgreSQL. Measured on ResolveSecrets' read: 1.52 ms a call unnamed,
 * 0.34 ms named (parse, describe and plan skipped). Queries whose text varies
 * (IN lists, multi-row inserts) must not be marked: each text would hold a
 * statement on every connection. Nor may a `selectAll()`: once a rolling
 * upgrade's migration adds a column, PostgreSQL refuses a prepared
 * statement whose result type changed ("cached plan must not change result
 * type") on every older replica. Name the columns.
 *
 * @example
 * ```ts
 * const row = (await db.executeQuery(prepared(db.selectFrom("api_keys").selectAll().where("id", "=", id)))).rows[0];
 * ```
 */
export function prepared<R>(query: Compilable<R>): CompiledQuery<R> {
  const compiled = query.compile();
  if (!preparedNames.has(compiled.sql) && preparedNames.size < PREPARED_MAX) {
    const digest = createHash("sha256").update(compiled.sql).digest("hex").slice(0, 24);
    preparedNames.set(compiled.sql, `latchkey_${digest}`);
  }
  return compiled;
}

/** The name {@link prepared} gave this SQL text, if any (for tests). */
export function preparedStatementName(sql: string): string | undefined {
  return preparedNames.get(sql);
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
  pool.on("error", (error) => onPoolError?.(error));
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: preparedStatements ? preparingPool(pool) : pool }),
  });
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

/**
 * The pool kysely sees: each client runs a text marked by {@link prepared}
 * under its statement name (pg parses it on a connection's first use and
 * reuses it after), every other text as before. One wrapper per pg client,
 * kept as long as the client lives: kysely keys its connections by the
 * client object it is handed.
 */
function preparingPool(pool: pg.Pool): PostgresPool {
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    const query = (sql: string, parameters: ReadonlyArray<unknown>) => {
      const name = preparedNames.get(sql);
      return name === undefined
        ? client.query(sql, [...parameters])
        : client.query({ name, text: sql, values: [...parameters] });
    };
    return {
      query,
      release: (destroy?: boolean) => client.release(destroy),
    } as unknown as PostgresPoolClient;
  };
  return {
    options: pool.options,
    // The client class kysely opens a control connection with (query cancellation), as pg's pool has it.
    Client: (pool as unknown as Pick<PostgresPool, "Client">).Client,
    async connect() {
      const client = await pool.connect();
      let wrapper = wrappers.get(client);
      if (wrapper === undefined) {
        wrapper = wrap(client);
        wrappers.set(client, wrapper);
      }
      return wrapper;
    },
    end: () => pool.end(),
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
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }) });
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
