import { ConfigError } from "@latchkey/config";
import { startTracing } from "@latchkey/telemetry";
import { loadTokenServiceConfig, type TokenServiceConfig } from "./config.js";
import { openDatabase } from "./db/database.js";
import { migrateToLatest } from "./db/migrate.js";
import { gitleaksRulesCommand } from "./gitleaks-command.js";
import { runImportCommand } from "./import-cli/import-command.js";
import { loadMasterKeyring, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV } from "./keychains/master-keyring.js";
import { rewrapKeychains } from "./keychains/rewrap-keychains.js";
import { createLogger } from "./logger.js";
import { databaseCa, startTokenService } from "./token-service.js";

// Entry point of `latchkey-token-service [serve|migrate|import|gitleaks-rules|keychain-rewrap]`.

async function main(command: string): Promise<void> {
  if (command === "import") {
    // A client of a running token-service: it needs none of the service's settings.
    process.exitCode = await runImportCommand({
      argv: process.argv.slice(3),
      env: process.env,
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
    });
    return;
  }
  if (command === "gitleaks-rules") {
    // Secret-scanning rules for the configured key formats (or a format file's), as TOML on stdout.
    process.stdout.write(gitleaksRulesCommand(process.argv[3]));
    return;
  }
  const config = loadTokenServiceConfig();
  const logger = createLogger(config.logLevel);
  if (command === "migrate") {
    const database = await openCommandDatabase(config);
    try {
      const { applied } = await migrateToLatest(database.db);
      logger.info({ applied }, applied.length ? "migrations applied" : "schema is up to date");
    } finally {
      await database.close();
    }
    return;
  }
  if (command === "keychain-rewrap") {
    // Every keychain's data key moved to the active (first) master key; then the old one can go.
    const keyring = loadMasterKeyring(config);
    if (keyring === undefined) {
      throw new ConfigError(`keychain-rewrap needs ${MASTER_KEY_ENV} or ${MASTER_KEY_FILE_ENV}`, [
        MASTER_KEY_ENV,
      ]);
    }
    const database = await openCommandDatabase(config);
    try {
      const report = await rewrapKeychains({ db: database.db, keyring, logger });
      process.stdout.write(
        `re-wrapped ${report.rewrapped} keychain data key(s) under master key ${keyring.activeId}` +
          (report.failed.length === 0
            ? "; none is left under another key\n"
            : `; ${report.failed.length} left as they were (see the log): ${report.failed.map((f) => `${f.keychainId} (${f.reason})`).join(", ")}\n`),
      );
      if (report.failed.length > 0) process.exitCode = 1;
    } finally {
      await database.close();
    }
    return;
  }
  if (command !== "serve")
    throw new ConfigError(
      `unknown command ${JSON.stringify(command)}: use serve, migrate, import, gitleaks-rules or keychain-rewrap`,
      [],
    );
  // Before the service starts: its listeners and database read once whether tracing is on.
  const tracing = await startTracing({
    serviceName: "latchkey-token-service",
    warn: (message) => logger.warn(message),
  });
  const service = await startTokenService(config, { logger });
  if (service.generatedRootKey) {
    // Printed once, on the start that generated it; only its hash is stored.
    process.stdout.write(
      `\nLatchkey root key (shown once, store it now):\n\n  ${service.generatedRootKey}\n\n` +
        "Set LATCHKEY_ROOT_KEY to use a key of your own instead.\n\n",
    );
  }
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      logger.info({ signal }, "shutting down");
      service
        .close()
        .then(() => tracing.shutdown())
        .then(
          () => process.exit(0),
          () => process.exit(1),
        );
    });
  }
}

/** The database of a one-off command (`migrate`, `keychain-rewrap`): one connection. */
function openCommandDatabase(config: TokenServiceConfig) {
  return openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolMax: 1,
    ca: databaseCa(config),
  });
}

main(process.argv[2] ?? "serve").catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`latchkey-token-service: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(
    `latchkey-token-service: failed to start: ${(error as Error).stack ?? String(error)}\n`,
  );
  process.exit(1);
});
