import { randomBytes } from "node:crypto";
import { inject } from "vitest";
import { createDatabase } from "./postgres.js";

export {
  ensureBinaries,
  findNatsServer,
  findPostgresBinDir,
  type HarnessBinaries,
} from "./ensure-binaries.js";
export { findFreePort } from "./free-port.js";
export { type NatsServer, type StartNatsOptions, startNats, waitUntilAccepting } from "./nats.js";
export {
  createDatabase,
  type PostgresServer,
  type StartPostgresOptions,
  startPostgres,
  TEST_DATABASE,
} from "./postgres.js";

/**
 * Creates an empty, uniquely named database on the run's PostgreSQL server and returns its URL, so a
 * test can migrate and fill it without seeing any other test's rows.
 *
 * @example
 * ```ts
 * const db = createDb(await freshDatabaseUrl());
 * ```
 */
export async function freshDatabaseUrl(prefix = "t"): Promise<string> {
  const name = `latchkey_${prefix}_${process.pid}_${randomBytes(4).toString("hex")}`;
  return createDatabase(inject("databaseUrl"), name);
}

/** URL of the run's NATS server (JetStream enabled). */
export function natsUrl(): string {
  return inject("natsUrl");
}

/** URL of the run's PostgreSQL test database, shared by every test that uses it. */
export function databaseUrl(): string {
  return inject("databaseUrl");
}
export {
  type CertificateUse,
  createTestCertificates,
  createTestPki,
  type TestCertificates,
  type TestPki,
} from "./certificates.js";
