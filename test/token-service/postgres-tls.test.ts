// Issue 17, defects 5 and 6: the token-service reaches PostgreSQL over TLS and
// checks the server's certificate chain and host name (sslmode=verify-full)
// against the CA bundle named by LATCHKEY_DB_CA_FILE: a managed database's
// provider bundle, or CloudNativePG's ca.crt. A PostgreSQL that serves TLS
// only (cleartext rejected in pg_hba.conf), certificates made by openssl.
import { readFileSync } from "node:fs";
import { ConfigError } from "@latchkey/config";
import { VerifyResult } from "@latchkey/proto";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenServiceConfig } from "../../services/token-service/src/config.js";
import { startTokenService } from "../../services/token-service/src/token-service.js";
import {
  createDatabase,
  createTestPki,
  type PostgresServer,
  startPostgres,
  type TestPki,
} from "../harness/index.js";
import { ROOT_KEY, startTestService, testConfig } from "./start.js";

describe("PostgreSQL over TLS with LATCHKEY_DB_CA_FILE", () => {
  let pki: TestPki;
  let stranger: TestPki;
  let server: PostgresServer;
  /** The TLS-only server's database URL as an operator writes it: no CA path in it. */
  let databaseUrl: string;

  beforeAll(async () => {
    pki = await createTestPki("postgres");
    stranger = await createTestPki("stranger");
    // Issued for the address only: a client that connects as "localhost" must refuse it.
    const { certFile, keyFile } = await pki.issue("postgres", ["IP:127.0.0.1"]);
    server = await startPostgres({ tls: { certFile, keyFile, caFile: pki.caFile } });
    const url = new URL(await createDatabase(server.url, "latchkey_tls"));
    url.search = "?sslmode=verify-full";
    databaseUrl = url.toString();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    pki?.dispose();
    stranger?.dispose();
  });

  it("starts, migrates and serves with every connection encrypted, the LISTEN one included", async () => {
    const service = await startTestService({ databaseUrl, settings: { dbCaFile: pki.caFile } });
    try {
      const { teamId } = await service.teamWithAdmin("tls-db");
      const { token } = await service.tokens().issue({ teamId, name: "stored-over-tls" });
      expect((await service.tokens(null).verify({ token })).result).toBe(VerifyResult.VALID);
      // The server's own view: no connection to this database without TLS.
      const admin = new pg.Client({ connectionString: server.url, ssl: { ca: readCa(pki) } });
      await admin.connect();
      try {
        const { rows } = await admin.query<{ ssl: boolean; n: number }>(
          `select s.ssl, count(*)::int as n from pg_stat_activity a join pg_stat_ssl s using (pid)
           where a.datname = 'latchkey_tls' and a.pid <> pg_backend_pid() group by s.ssl`,
        );
        expect(rows).toEqual([{ ssl: true, n: expect.any(Number) }]);
        // The pool's connections plus the outbox publisher's LISTEN connection.
        expect(rows[0]?.n).toBeGreaterThanOrEqual(2);
      } finally {
        await admin.end();
      }
    } finally {
      await service.close();
    }
  });

  it("refuses a server whose certificate another CA signed", async () => {
    const config = testConfig({ databaseUrl, settings: { dbCaFile: stranger.caFile } });
    await expect(startTokenService(config, { logger: pino({ level: "silent" }) })).rejects.toThrow(
      /self[- ]signed|unable to verify|certificate/i,
    );
  });

  it("refuses a certificate that does not name the host it connected to (verify-full, not verify-ca)", async () => {
    const byName = new URL(databaseUrl);
    byName.hostname = "localhost";
    const config = testConfig({ databaseUrl: byName.toString(), settings: { dbCaFile: pki.caFile } });
    await expect(startTokenService(config, { logger: pino({ level: "silent" }) })).rejects.toThrow(
      /localhost|altnames|Hostname/i,
    );
  });

  it("stops start-up naming LATCHKEY_DB_CA_FILE when the file is missing or contradicted", async () => {
    const missing = testConfig({ databaseUrl, settings: { dbCaFile: `${pki.dir}/nope.pem` } });
    const error = await startTokenService(missing, { logger: pino({ level: "silent" }) }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).settings).toEqual(["LATCHKEY_DB_CA_FILE"]);
    const weaker = () =>
      loadTokenServiceConfig({
        DATABASE_URL: databaseUrl.replace("verify-full", "disable"),
        LATCHKEY_DB_CA_FILE: pki.caFile,
        LATCHKEY_ROOT_KEY: ROOT_KEY,
      });
    expect(weaker).toThrow(ConfigError);
    expect(weaker).toThrow(/LATCHKEY_DB_CA_FILE.*sslmode=disable/s);
  });
});

function readCa(pki: TestPki): string {
  return readFileSync(pki.caFile, "utf8");
}
