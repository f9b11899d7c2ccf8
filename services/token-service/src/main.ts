import { ConfigError } from "@latchkey/config";
import { loadTokenServiceConfig } from "./config.js";
import { openDatabase } from "./db/database.js";
import { migrateToLatest } from "./db/migrate.js";
import { gitleaksRulesCommand } from "./gitleaks-command.js";
import { runImportCommand } from "./import-cli/import-command.js";
import { createLogger } from "./logger.js";
import { databaseCa, startTokenService } from "./token-service.js";

// Entry point of `latchkey-token-service [serve|migrate|import|gitleaks-rules]`.

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
    const database = await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolMax: 1,
      ca: databaseCa(config),
    });
    try {
      const { applied } = await migrateToLatest(database.db);
      logger.info({ applied }, applied.length ? "migrations applied" : "schema is up to date");
    } finally {
      await database.close();
    }
    return;
  }
  if (command !== "serve")
    throw new ConfigError(
      `unknown command ${JSON.stringify(command)}: use serve, migrate, import or gitleaks-rules`,
      [],
    );
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
      service.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
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
