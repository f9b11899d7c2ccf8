import { readPemFile, readTlsKeyPair } from "@latchkey/config";
import { createOutboxCoverage, type KeyEventBus } from "@latchkey/events";
import { randomBase62 } from "@latchkey/token";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { createAuditService } from "./audit/audit-handlers.js";
import { createAuditSweeper } from "./audit/audit-sweeper.js";
import { auditRefusals } from "./audit/refusal-audit.js";
import { createRefusedCallRecorder } from "./audit/refused-call-recorder.js";
import { createAdminAuthenticator } from "./auth/admin-authenticator.js";
import { resolveRootCredential } from "./auth/root-key.js";
import { keyFormatsOf, type TokenServiceConfig } from "./config.js";
import { type DatabaseHandle, openDatabase } from "./db/database.js";
import { migrateToLatest } from "./db/migrate.js";
import { openKeyEventBus } from "./key-event-bus.js";
import { loadMasterKeyring } from "./keychains/master-keyring.js";
import { startExpirySweeper } from "./keys/expiry-sweeper.js";
import { invalidateKeys } from "./keys/key-invalidation.js";
import { KeyRowCache } from "./keys/key-row-cache.js";
import { LastUsedRecorder } from "./keys/last-used-recorder.js";
import { createRowCacheFeed } from "./keys/row-cache-feed.js";
import { createLogger } from "./logger.js";
import { createTokenServiceMetrics } from "./metrics/token-service-metrics.js";
import { OUTBOX_CHANNEL, pendingBacklog, pendingCurrencyIds } from "./outbox/outbox.repository.js";
import { startOutboxCurrency } from "./outbox/outbox-currency.js";
import { createOutboxPublisher, type OutboxPublisher } from "./outbox/outbox-publisher.js";
import { PropagationTracker } from "./outbox/propagation-tracker.js";
import { createKeychainService } from "./rpc/keychain-service-impl.js";
import type { ServiceDeps } from "./rpc/service-deps.js";
import { createTeamService } from "./rpc/team-handlers.js";
import { createTokenService } from "./rpc/token-service-impl.js";
import { createConnectServer } from "./server/connect/connect-server.js";
import { defaultConsoleDir, loadConsoleAssets } from "./server/console/console-assets.js";
import { createConsoleRoute } from "./server/console/console-route.js";
import { createGrpcServer } from "./server/grpc-js/grpc-server.js";
import { createMetricsServer } from "./server/metrics/metrics-server.js";
import { createHealthService, ServingStatus } from "./server/shared/health.js";
import { createReflectionServices } from "./server/shared/reflection.js";
import type { RunningServer, TlsOptions } from "./server/shared/running-server.js";
import { startUsageIngest } from "./usage/usage-ingest.js";

/** Options of {@link startTokenService} that are not configuration. */
export interface StartOptions {
  /** Use this bus instead of building one (the in-process stack shares it with its sidecar). */
  readonly bus?: KeyEventBus;
  readonly logger?: Logger;
}

/** A running token-service. */
export interface TokenServiceHandle {
  /** Port of the Connect/gRPC/gRPC-Web listener. */
  readonly port: number;
  /** Port of the native gRPC listener. */
  readonly grpcPort: number;
  /** Port of the cleartext health listener, when `healthListen` is set. */
  readonly healthPort: number | undefined;
  /** Port of the `/metrics` listener, when `metricsListen` is set. */
  readonly metricsPort: number | undefined;
  /** The registry behind `/metrics`. */
  readonly metrics: Registry;
  /** The key event bus in use. */
  readonly bus: KeyEventBus;
  /** The root key's plaintext when this start generated it (print it once), else undefined. */
  readonly generatedRootKey: string | undefined;
  /** The admin console on the Connect port: `served`, `not-built` (it says to build it), or `off`. */
  readonly console: "served" | "not-built" | "off";
  readonly database: DatabaseHandle;
  readonly publisher: OutboxPublisher;
  readonly logger: Logger;
  /**
   * The row cache's key event feed: whether it is connected, and the stream
   * sequence up to which its cached rows reflect every event. For health
   * checks and tests.
   */
  eventFeed(): { connected: boolean; appliedSequence: number };
  /** Drains calls (up to the configured timeout), flushes batches, closes everything. */
  close(): Promise<void>;
}

/**
 * Starts the token-service: database (PostgreSQL or embedded PGlite) and
 * migrations, root credential, key event bus (NATS JetStream or in-process),
 * outbox publisher, and both listeners.
 *
 * @example
 * ```ts
 * const service = await startTokenService(loadTokenServiceConfig());
 * process.once("SIGTERM", () => service.close());
 * ```
 */
export async function startTokenService(
  config: TokenServiceConfig,
  options: StartOptions = {},
): Promise<TokenServiceHandle> {
  const logger = options.logger ?? createLogger(config.logLevel);
  // Read before anything connects: a bad or unreadable master key stops start-up naming its setting.
  const keychainKeyring = loadMasterKeyring(config);
  // Files first: a bad certificate stops start-up before anything connects.
  const tls = tlsOptions(config);
  const clientCa =
    config.grpcClientCaFile === undefined
      ? undefined
      : readPemFile(config.grpcClientCaFile, "LATCHKEY_GRPC_CLIENT_CA_FILE");
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolMax: config.dbPoolMax,
    preparedStatements: config.dbPreparedStatements,
    ca: databaseCa(config),
    onPoolError: (error) => logger.warn({ err: error }, "database client error"),
  });
  const cleanups: Array<() => Promise<void>> = [() => database.close()];
  const cleanup = async () => {
    for (const step of cleanups.reverse())
      await step().catch((error) => logger.warn({ err: error }, "shutdown step failed"));
  };
  try {
    if (config.migrateOnStart) {
      const { applied } = await migrateToLatest(database.db);
      if (applied.length > 0) logger.info({ applied }, "migrations applied");
    }
    // Validated by the config schema already; built once here with the signing keys.
    const formats = keyFormatsOf(config);
    const root = await resolveRootCredential(database.db, {
      rootKey: config.rootKey,
      prefix: config.keyPrefix,
    });
    const cache = new KeyRowCache({
      maxEntries: config.verifyCacheMaxEntries,
      ttlMs: config.verifyCacheTtlMs,
    });
    const opened = options.bus ? { bus: options.bus } : openKeyEventBus(config, logger);
    const { bus } = opened;
    if (!options.bus) cleanups.push(() => bus.close());
    let wakePublisher: (() => void) | undefined;
    // The row cache's proof of currency, on this process's monotonic clock (outbox-currency.ts).
    const coverage = createOutboxCoverage();
    const feed = createRowCacheFeed({
      bus,
      cache,
      coverage,
      logger,
      // Events committed while the bus was down can go out now.
      onConnected: () => wakePublisher?.(),
    });
    cleanups.push(() => feed.close());
    // A NATS bus is subscribed to in the background once its stream exists; the others now.
    if (opened.streamReady) feed.subscribeWhenReady(opened.streamReady);
    else await feed.subscribe();
    const tracker = new PropagationTracker(bus);
    cleanups.push(() => tracker.close());
    const publisher = createOutboxPublisher({
      db: database.db,
      bus,
      logger,
      pollMs: config.outboxPollMs,
      onPublished: (row, sequence) => tracker.published(row.id, sequence),
    });
    wakePublisher = () => publisher.wake();
    cleanups.push(() => publisher.stop());
    const unlisten = await database.listen(OUTBOX_CHANNEL, () => publisher.wake());
    cleanups.push(unlisten);
    const stopSweeper = startExpirySweeper({
      db: database.db,
      logger,
      intervalMs: config.expirySweepMs,
      onExpired: (keys) => invalidateKeys({ cache, publisher }, keys),
    });
    cleanups.push(stopSweeper);
    const lastUsed = new LastUsedRecorder(database.db, logger, config.lastUsedFlushMs);
    cleanups.push(() => lastUsed.close());

    const registry = new Registry();
    const metrics = createTokenServiceMetrics(registry, {
      outboxBacklog: () => pendingBacklog(database.db),
      eventsConnected: feed.connected,
      busConnected: () => bus.isConnected(),
      rowCacheCurrencyAgeSeconds: () => (performance.now() - coverage.coveredAt()) / 1000,
    });
    const currency = startOutboxCurrency({
      bus,
      pendingIds: (limit) => pendingCurrencyIds(database.db, limit),
      intervalMs: config.outboxCurrencyMs,
      replicaId: `ts_${randomBase62(16)}`,
      coverage,
      logger,
      onRound: metrics.currencyRound,
    });
    cleanups.push(() => currency.close());
    const stopUsage = await startUsageIngest({
      db: database.db,
      bus,
      logger,
      retentionMs: config.usageRetentionDays * 86_400_000,
      // Longer than a report can wait in the stream, plus the publisher's own retries.
      dedupeMs: config.usageStreamMaxAgeS * 1000 + 3_600_000,
      sweepMs: config.usageSweepMs,
      registry,
    });
    cleanups.push(stopUsage);
    const deps: ServiceDeps = {
      db: database.db,
      logger,
      formats,
      importMaxBatch: config.importMaxBatch,
      keyFormat: config.keyFormat ?? formats.formats[0]?.name ?? "latchkey",
      auth: createAdminAuthenticator({ db: database.db, root, formats }),
      cache,
      lastUsed,
      publisher,
      tracker,
      rowCacheCurrent: (maxStalenessMs) =>
        feed.connected() && performance.now() - coverage.coveredAt() <= maxStalenessMs,
      verifyCacheMaxStaleMs: config.verifyCacheMaxStaleMs,
      metrics,
      keychainKeyring,
    };
    // The audit log: refused admin calls (bounded, off the request path), and its retention.
    const refusedCalls = createRefusedCallRecorder({
      db: database.db,
      logger,
      maxRowsPerMinute: config.auditRefusedCallsPerMinute,
      registry,
    });
    cleanups.push(() => refusedCalls.close());
    if (config.auditRetentionDays > 0) {
      const sweeper = createAuditSweeper({
        db: database.db,
        logger,
        retentionDays: config.auditRetentionDays,
        intervalMs: config.auditSweepMs,
        batchSize: config.auditSweepBatch,
      });
      cleanups.push(() => sweeper.close());
    }
    const health = createHealthService({
      "": ServingStatus.SERVING,
      "latchkey.v1.TokenService": ServingStatus.SERVING,
      "latchkey.v1.TeamService": ServingStatus.SERVING,
      "latchkey.v1.KeychainService": ServingStatus.SERVING,
      "latchkey.v1.AuditService": ServingStatus.SERVING,
    });
    // Every admin call refused as unauthenticated or permission denied reaches the audit log;
    // Verify and ResolveSecrets are not admin calls (ResolveSecrets audits its own refusals).
    const audited = { recorder: refusedCalls, formats, exempt: ["verify", "resolveSecrets"] };
    const apps = [
      auditRefusals(createTokenService(deps), audited),
      auditRefusals(createTeamService(deps), audited),
      auditRefusals(createAuditService(deps), audited),
      auditRefusals(createKeychainService(deps), audited),
      health,
    ];
    const services = [...apps, ...createReflectionServices(apps)];
    const servers: RunningServer[] = [];
    // The admin console's files, read once now: the route serves exactly these names.
    const consoleAssets = config.consoleEnabled ? loadConsoleAssets(defaultConsoleDir()) : undefined;
    if (consoleAssets?.size === 0)
      logger.warn("the admin console is not built (npm run build): /console says so");
    const consoleRoute = consoleAssets ? createConsoleRoute(consoleAssets) : undefined;
    const connect = await createConnectServer({
      services,
      listen: config.listen,
      logger,
      onCallFinished: metrics.rpcFinished,
      sniffTimeoutMs: config.sniffTimeoutMs,
      cors: { allowedOrigins: config.corsAllowedOrigins ?? [], maxAgeS: config.corsMaxAgeS },
      ...(consoleRoute ? { console: consoleRoute } : {}),
      ...(tls ? { tls } : {}),
    });
    servers.push(connect);
    // Closed here only when a later step fails; close() closes it first otherwise.
    cleanups.push(() => connect.close(0));
    const grpc = await createGrpcServer({
      services,
      listen: config.grpcListen,
      logger,
      onCallFinished: metrics.rpcFinished,
      maxConnectionAgeMs: config.grpcMaxConnectionAgeMs,
      maxConnectionAgeGraceMs: config.grpcMaxConnectionAgeGraceMs,
      ...(tls ? { tls } : {}),
      ...(clientCa ? { clientCa } : {}),
    });
    servers.push(grpc);
    cleanups.push(() => grpc.close(0));
    // Cleartext and health only: kubelet gRPC probes cannot speak TLS, and
    // nothing here carries a key.
    const healthServer = config.healthListen
      ? await createGrpcServer({ services: [health], listen: config.healthListen, logger })
      : undefined;
    if (healthServer) {
      servers.push(healthServer);
      cleanups.push(() => healthServer.close(0));
    }
    const metricsServer = config.metricsListen
      ? await createMetricsServer({ registry, listen: config.metricsListen, logger })
      : undefined;
    // Closed last, so the drain can still be scraped.
    if (metricsServer) cleanups.push(() => metricsServer.close(0));
    logger.info(
      {
        port: connect.port,
        grpcPort: grpc.port,
        healthPort: healthServer?.port,
        metricsPort: metricsServer?.port,
        database: database.kind,
        bus: config.natsUrl ? "nats" : "in-process",
        keychainMasterKeys: keychainKeyring?.ids ?? "none (keychain RPCs refused)",
      },
      "token-service ready",
    );
    let closing: Promise<void> | undefined;
    return {
      port: connect.port,
      grpcPort: grpc.port,
      healthPort: healthServer?.port,
      metricsPort: metricsServer?.port,
      metrics: registry,
      bus,
      generatedRootKey: root.generated,
      console: consoleAssets === undefined ? "off" : consoleAssets.size === 0 ? "not-built" : "served",
      database,
      publisher,
      logger,
      eventFeed: () => ({ connected: feed.connected(), appliedSequence: Number(cache.appliedSequence) }),
      close() {
        closing ??= (async () => {
          health.shutdown();
          await Promise.all(servers.map((server) => server.close(config.shutdownTimeoutMs)));
          await cleanup();
          logger.info("token-service stopped");
        })();
        return closing;
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/**
 * The listeners' certificate and key, checked to belong together before any
 * listener starts.
 *
 * @throws ConfigError naming LATCHKEY_TLS_CERT or LATCHKEY_TLS_KEY.
 */
function tlsOptions(config: TokenServiceConfig): TlsOptions | undefined {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return undefined;
  const { cert, key } = readTlsKeyPair(config.tlsCert, config.tlsKey, [
    "LATCHKEY_TLS_CERT",
    "LATCHKEY_TLS_KEY",
  ]);
  return { cert, key };
}

/**
 * The PostgreSQL CA bundle named by `LATCHKEY_DB_CA_FILE`, read before anything
 * connects. The `migrate` command reads it the same way.
 *
 * @throws ConfigError naming the setting when the file is missing or holds no certificate.
 */
export function databaseCa(config: Pick<TokenServiceConfig, "dbCaFile">): Buffer | undefined {
  return config.dbCaFile === undefined ? undefined : readPemFile(config.dbCaFile, "LATCHKEY_DB_CA_FILE");
}
