import {
  booleanSetting,
  checkNatsClientSettings,
  integerSetting,
  listenAddress,
  loadConfig,
  NATS_CLIENT_ENV,
  natsClientSettings,
  structuredSetting,
} from "@latchkey/config";
import {
  assertIssuable,
  createKeyFormats,
  defaultKeyFormatSpecs,
  isValidPrefix,
  type KeyFormatSpec,
  type SigningKeySpec,
  validateKeyFormats,
  validateSigningKeys,
} from "@latchkey/token";
import { z } from "zod";
import { MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, parseMasterKeyring } from "./keychains/master-keyring.js";
import { DEFAULT_SNIFF_TIMEOUT_MS } from "./server/connect/http-listener.js";

/**
 * Comma-separated browser origins, each exactly as a browser sends it in
 * `Origin`: scheme, lower-case host, optional port, nothing else. `*` is
 * refused: every origin must be named.
 */
const originList = z.string().transform((value, ctx) => {
  const origins: string[] = [];
  for (const raw of value.split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const url = URL.canParse(entry) ? new URL(entry) : undefined;
    if (url === undefined || !["http:", "https:"].includes(url.protocol) || url.origin !== entry) {
      ctx.addIssue({
        code: "custom",
        message: `"${entry}" is not an origin like https://console.example.com (no path, lower-case host)`,
      });
      return z.NEVER;
    }
    origins.push(entry);
  }
  return origins;
});

/**
 * The token-service's settings. Each one says why it exists; the README's
 * configuration table lists the same names. Parsed once at start-up.
 */
export const tokenServiceConfigSchema = z
  .object({
    // Connect, gRPC and gRPC-Web on one HTTP/2 port: browsers, buf curl, Connect clients.
    listen: listenAddress.prefault("0.0.0.0:8081"),
    // Native gRPC (grpc-js) on its own port: the fast path for Verify callers and verifiers.
    grpcListen: listenAddress.prefault("0.0.0.0:8082"),
    // gRPC health only, always cleartext: kubelet gRPC probes cannot speak TLS, and health carries no
    // keys. Unset = no such port (health is still served on both main listeners).
    healthListen: listenAddress.optional(),
    // Prometheus /metrics over plain HTTP on its own port, so scrapes never reach the RPC listeners.
    // Unset = no metrics endpoint.
    metricsListen: listenAddress.optional(),
    // The grpc-js listener sends GOAWAY to a connection this old (±10 % jitter), so clients
    // reconnect through the Service and new replicas get their share of long-lived HTTP/2
    // connections (0 = never).
    grpcMaxConnectionAgeMs: integerSetting(0, 86_400_000).default(120_000),
    // How long calls in flight on such a connection may still run before it is closed.
    grpcMaxConnectionAgeGraceMs: integerSetting(0, 3_600_000).default(10_000),
    // PostgreSQL; unset means embedded PGlite under dataDir (the `npm start` default).
    databaseUrl: z.string().url("must be a postgres:// URL").optional(),
    // PEM bundle of the CAs that sign the PostgreSQL server's certificate (a managed database's
    // provider bundle, CloudNativePG's ca.crt). Set = TLS with sslmode=verify-full semantics
    // (chain and host name checked), whatever DATABASE_URL says, since operators write that URL.
    dbCaFile: z.string().min(1).optional(),
    // NATS with JetStream for key events; unset means the in-process bus.
    natsUrl: z.string().min(1).optional(),
    // Its NATS user (nkey seed file; the token-service role) and TLS to NATS.
    ...natsClientSettings,
    // Where the embedded database lives when databaseUrl is unset.
    dataDir: z.string().min(1).default("./.latchkey"),
    // Token prefix for this deployment (`lk_live_…`).
    keyPrefix: z
      .string()
      .default("lk")
      .refine(isValidPrefix, "must be a lower-case letter then up to 15 lower-case letters or digits"),
    // ---- Key formats (issue 11) ----
    // The formats this deployment accepts (a list: name, kind latchkey|hex|base64url|signed, prefix, lengths);
    // a key matching none is MALFORMED before any lookup. Unset = one `latchkey` format with keyPrefix.
    keyFormats: structuredSetting((value) => {
      validateKeyFormats(value);
      return value as KeyFormatSpec[];
    }).optional(),
    // The format Issue and Rotate use when neither the request nor the team names one; unset = the first listed.
    keyFormat: z.string().min(1).optional(),
    // HMAC-SHA256 keys of `signed` formats, by kid: one `active` signs, retired ones verify until `notAfter`.
    keySigningKeys: structuredSetting((value) => {
      validateSigningKeys(value);
      return value as SigningKeySpec[];
    }).optional(),
    // Root key, used as is; unset means one is generated on first start, stored hashed and printed once.
    rootKey: z
      .string()
      .min(32, "must be at least 32 characters")
      .max(512, "must be at most 512 characters")
      .optional(),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    // PEM files; both set enables TLS on both listeners.
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    // PEM bundle of the CA that signs clients' certificates: set = mutual TLS on the native gRPC
    // listener (grpcListen), where Verify carries raw keys: a client without a certificate that
    // chains to it is refused in the handshake. Needs tlsCert/tlsKey.
    grpcClientCaFile: z.string().min(1).optional(),
    // How long SIGTERM waits for in-flight calls before closing connections.
    shutdownTimeoutMs: integerSetting(0, 300_000).default(10_000),
    // last_used_at is written in batches this often instead of once per Verify.
    lastUsedFlushMs: integerSetting(100, 600_000).default(5_000),
    // Connections in the PostgreSQL pool per replica.
    dbPoolMax: integerSetting(1, 500).default(10),
    // Hot fixed-shape queries as named prepared statements; off behind a pooler that cannot keep them.
    dbPreparedStatements: booleanSetting.default(true),
    // Outbox poll interval: the fallback when LISTEN/NOTIFY is missed.
    outboxPollMs: integerSetting(50, 60_000).default(1_000),
    // How often this replica proves the outbox published (one read of the outbox, one of the stream's
    // end) and answers verifiers' currency requests with it. A verifier's proof of currency is about
    // this plus its heartbeat interval old; it must stay below the verifiers' maxStaleMs.
    outboxCurrencyMs: integerSetting(20, 10_000).default(250),
    // How long key events stay in the JetStream stream; longer than any cache TTL.
    streamMaxAgeS: integerSetting(60, 365 * 86_400).default(7 * 86_400),
    // Size bound of the stream.
    streamMaxBytes: integerSetting(1024 * 1024, 1024 ** 4).default(1024 ** 3),
    // JetStream replicas of the stream (3 on a NATS cluster).
    streamReplicas: integerSetting(1, 5).default(1),
    // Server-side cache of key rows for Verify; invalidated by every key event.
    verifyCacheMaxEntries: integerSetting(0, 10_000_000).default(100_000),
    verifyCacheTtlMs: integerSetting(0, 3_600_000).default(30_000),
    // The row cache answers only while this replica's own outbox currency proof is younger than this
    // (a Verify request may ask for less: max_staleness_ms); otherwise Verify reads PostgreSQL.
    verifyCacheMaxStaleMs: integerSetting(0, 3_600_000).default(1_000),
    // Minute buckets of usage are kept this many days, then swept (GetUsage reaches no further back).
    usageRetentionDays: integerSetting(1, 3_660).default(35),
    // How often old usage buckets and report ids are swept.
    usageSweepMs: integerSetting(1_000, 86_400_000).default(60_000),
    // How long a usage report may wait in the LATCHKEY_USAGE stream for a token-service to take it.
    usageStreamMaxAgeS: integerSetting(60, 30 * 86_400).default(86_400),
    // How often expired keys are looked for, to announce them with an EXPIRED key event.
    expirySweepMs: integerSetting(100, 3_600_000).default(1_000),
    // Run migrations at start (off when a Job runs `latchkey-token-service migrate`).
    migrateOnStart: booleanSetting.default(true),
    // ---- HTTP/1.1 and browsers on the Connect port (issue 18) ----
    // In cleartext, HTTP/1.1 and h2c share `listen`, told apart by each connection's first bytes; a
    // connection that sends nothing telling within this time is closed, so idle sockets cannot pile up.
    sniffTimeoutMs: integerSetting(100, 300_000).default(DEFAULT_SNIFF_TIMEOUT_MS),
    // Origins of browser pages allowed to call over CORS (`https://console.example.com`, comma
    // separated); unset = none, so no page elsewhere can read an answer.
    corsAllowedOrigins: originList.optional(),
    // How long a browser may cache a preflight's answer (Chromium caps it at 7200).
    corsMaxAgeS: integerSetting(0, 86_400).default(7_200),
    // ---- The admin console (issue 15) ----
    // Serve the browser admin console under /console on `listen` (the files `npm run build` writes to
    // packages/console/dist, read once at start). It only calls the RPCs with the key it is given;
    // false = no /console route at all.
    consoleEnabled: booleanSetting.default(true),
    // The most keys one ImportKeys call may carry: a batch is one transaction, so this bounds how
    // long it holds its locks (requests are also bound to 64 KiB, about 300 typical keys).
    importMaxBatch: integerSetting(1, 10_000).default(1_000),
    // ---- Keychains (issue 12) ----
    // Master keys that wrap each keychain's data key, `<id>:<32 bytes base64>` separated by commas;
    // the first wraps new data keys, the others only unwrap (rotation without downtime, then
    // `latchkey-token-service keychain-rewrap`). Unset (and no file) = keychain RPCs answer
    // FAILED_PRECONDITION.
    keychainMasterKey: z.string().min(1).optional(),
    // The same in a file (one key per line, `#` comments), e.g. a mounted Kubernetes Secret.
    keychainMasterKeyFile: z.string().min(1).optional(),
    // ---- The audit log (issue 13) ----
    // Entries older than this many days are deleted by a sweeper; 0 keeps them forever.
    auditRetentionDays: integerSetting(0, 36_500).default(365),
    // How often the sweeper looks for entries past their retention.
    auditSweepMs: integerSetting(1_000, 86_400_000).default(60_000),
    // Entries one DELETE removes: small batches keep each statement's locks and WAL short.
    auditSweepBatch: integerSetting(1, 100_000).default(1_000),
    // Refused admin calls (unauthenticated, permission denied) cost a caller nothing: each replica
    // writes at most this many audit rows for them a minute, and counts the rest.
    auditRefusedCallsPerMinute: integerSetting(1, 100_000).default(120),
  })
  .strict()
  .superRefine((value, ctx) => {
    checkNatsClientSettings(value, ctx);
    checkKeyFormats(value, ctx);
    checkMasterKeys(value, ctx);
    if (Boolean(value.tlsCert) !== Boolean(value.tlsKey)) {
      ctx.addIssue({ code: "custom", path: ["tlsCert"], message: "tlsCert and tlsKey must be set together" });
    }
    if (value.grpcClientCaFile !== undefined && value.tlsCert === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["grpcClientCaFile"],
        message: "mutual TLS needs TLS: set LATCHKEY_TLS_CERT and LATCHKEY_TLS_KEY too",
      });
    }
    if (value.dbCaFile !== undefined) {
      const sslmode = URL.canParse(value.databaseUrl ?? "")
        ? new URL(value.databaseUrl ?? "").searchParams.get("sslmode")
        : null;
      if (value.databaseUrl === undefined) {
        ctx.addIssue({ code: "custom", path: ["dbCaFile"], message: "needs DATABASE_URL (PostgreSQL)" });
      } else if (sslmode !== null && sslmode !== "verify-full") {
        // A weaker mode next to a CA file is a contradiction; refuse it rather than pick one.
        ctx.addIssue({
          code: "custom",
          path: ["dbCaFile"],
          message: `means sslmode=verify-full, but DATABASE_URL says sslmode=${sslmode}`,
        });
      }
    }
  });

/** The formats a config lists (or the default one), the signing keys, and the issue default. */
export function keyFormatsOf(config: {
  keyFormats?: KeyFormatSpec[] | undefined;
  keyPrefix: string;
  keySigningKeys?: SigningKeySpec[] | undefined;
}) {
  return createKeyFormats({
    formats: config.keyFormats ?? defaultKeyFormatSpecs(config.keyPrefix),
    signingKeys: config.keySigningKeys ?? [],
  });
}

/** Cross-setting checks of the key formats, each reported against the setting at fault. */
function checkKeyFormats(
  value: {
    keyFormats?: KeyFormatSpec[] | undefined;
    keyFormat?: string | undefined;
    keyPrefix: string;
    keySigningKeys?: SigningKeySpec[] | undefined;
  },
  ctx: z.RefinementCtx,
): void {
  // A legacy signed format names the signing key of the system being migrated from: it must be listed.
  const kids = new Set((value.keySigningKeys ?? []).map((key) => key.kid));
  for (const [index, spec] of (Array.isArray(value.keyFormats) ? value.keyFormats : []).entries()) {
    if (spec.legacyKid !== undefined && !kids.has(spec.legacyKid)) {
      ctx.addIssue({
        code: "custom",
        path: ["keySigningKeys"],
        message: `format ${spec.name} (keyFormats[${index}]) has legacyKid ${spec.legacyKid}, which names no signing key`,
      });
      return;
    }
  }
  let formats: ReturnType<typeof keyFormatsOf>;
  try {
    formats = keyFormatsOf(value);
  } catch {
    return; // each list's own error is already reported
  }
  if (formats.formats.some((format) => format.kind === "signed") && formats.signingKeys.length === 0) {
    ctx.addIssue({
      code: "custom",
      path: ["keySigningKeys"],
      message: "a signed key format needs signing keys",
    });
  }
  const issuing = value.keyFormat ?? formats.formats[0]?.name ?? "";
  try {
    assertIssuable(formats, issuing);
  } catch (error) {
    ctx.addIssue({
      code: "custom",
      path: [value.keyFormat === undefined ? "keyFormats" : "keyFormat"],
      message: (error as Error).message,
    });
  }
}

/** The master key settings: one of the two, and well formed (the file is read at start). */
function checkMasterKeys(
  value: { keychainMasterKey?: string | undefined; keychainMasterKeyFile?: string | undefined },
  ctx: z.RefinementCtx,
): void {
  if (value.keychainMasterKey !== undefined && value.keychainMasterKeyFile !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["keychainMasterKey"],
      message: `set this or ${MASTER_KEY_FILE_ENV}, not both`,
    });
    return;
  }
  if (value.keychainMasterKey === undefined) return;
  try {
    parseMasterKeyring(value.keychainMasterKey, MASTER_KEY_ENV);
  } catch (error) {
    // The message names the entry at fault, never the key material.
    const message = (error as Error).message.slice(`${MASTER_KEY_ENV}: `.length);
    ctx.addIssue({ code: "custom", path: ["keychainMasterKey"], message });
  }
}

/** The token-service's parsed configuration. */
export type TokenServiceConfig = z.output<typeof tokenServiceConfigSchema>;

/** Environment variable of each setting. */
export const TOKEN_SERVICE_ENV = {
  listen: "LATCHKEY_LISTEN",
  grpcListen: "LATCHKEY_GRPC_LISTEN",
  healthListen: "LATCHKEY_HEALTH_LISTEN",
  metricsListen: "LATCHKEY_METRICS_LISTEN",
  grpcMaxConnectionAgeMs: "LATCHKEY_GRPC_MAX_CONNECTION_AGE_MS",
  grpcMaxConnectionAgeGraceMs: "LATCHKEY_GRPC_MAX_CONNECTION_AGE_GRACE_MS",
  databaseUrl: "DATABASE_URL",
  dbCaFile: "LATCHKEY_DB_CA_FILE",
  natsUrl: "NATS_URL",
  ...NATS_CLIENT_ENV,
  dataDir: "LATCHKEY_DATA_DIR",
  keyPrefix: "LATCHKEY_KEY_PREFIX",
  keyFormats: "LATCHKEY_KEY_FORMATS",
  keyFormat: "LATCHKEY_KEY_FORMAT",
  keySigningKeys: "LATCHKEY_KEY_SIGNING_KEYS",
  rootKey: "LATCHKEY_ROOT_KEY",
  logLevel: "LATCHKEY_LOG_LEVEL",
  tlsCert: "LATCHKEY_TLS_CERT",
  tlsKey: "LATCHKEY_TLS_KEY",
  grpcClientCaFile: "LATCHKEY_GRPC_CLIENT_CA_FILE",
  shutdownTimeoutMs: "LATCHKEY_SHUTDOWN_TIMEOUT_MS",
  lastUsedFlushMs: "LATCHKEY_LAST_USED_FLUSH_MS",
  dbPoolMax: "LATCHKEY_DB_POOL_MAX",
  dbPreparedStatements: "LATCHKEY_DB_PREPARED_STATEMENTS",
  outboxPollMs: "LATCHKEY_OUTBOX_POLL_MS",
  outboxCurrencyMs: "LATCHKEY_OUTBOX_CURRENCY_MS",
  streamMaxAgeS: "LATCHKEY_STREAM_MAX_AGE_S",
  streamMaxBytes: "LATCHKEY_STREAM_MAX_BYTES",
  streamReplicas: "LATCHKEY_STREAM_REPLICAS",
  verifyCacheMaxEntries: "LATCHKEY_VERIFY_CACHE_MAX_ENTRIES",
  verifyCacheTtlMs: "LATCHKEY_VERIFY_CACHE_TTL_MS",
  verifyCacheMaxStaleMs: "LATCHKEY_VERIFY_CACHE_MAX_STALE_MS",
  usageRetentionDays: "LATCHKEY_USAGE_RETENTION_DAYS",
  usageSweepMs: "LATCHKEY_USAGE_SWEEP_MS",
  usageStreamMaxAgeS: "LATCHKEY_USAGE_STREAM_MAX_AGE_S",
  expirySweepMs: "LATCHKEY_EXPIRY_SWEEP_MS",
  migrateOnStart: "LATCHKEY_MIGRATE_ON_START",
  sniffTimeoutMs: "LATCHKEY_SNIFF_TIMEOUT_MS",
  corsAllowedOrigins: "LATCHKEY_CORS_ALLOWED_ORIGINS",
  corsMaxAgeS: "LATCHKEY_CORS_MAX_AGE_S",
  consoleEnabled: "LATCHKEY_CONSOLE_ENABLED",
  importMaxBatch: "LATCHKEY_IMPORT_MAX_BATCH",
  keychainMasterKey: MASTER_KEY_ENV,
  keychainMasterKeyFile: MASTER_KEY_FILE_ENV,
  auditRetentionDays: "LATCHKEY_AUDIT_RETENTION_DAYS",
  auditSweepMs: "LATCHKEY_AUDIT_SWEEP_MS",
  auditSweepBatch: "LATCHKEY_AUDIT_SWEEP_BATCH",
  auditRefusedCallsPerMinute: "LATCHKEY_AUDIT_REFUSED_CALLS_PER_MINUTE",
} as const satisfies Record<keyof z.input<typeof tokenServiceConfigSchema>, string>;

/**
 * Reads the configuration from defaults, the `LATCHKEY_CONFIG` file and the
 * environment.
 *
 * @throws ConfigError naming every bad setting.
 */
export function loadTokenServiceConfig(source: NodeJS.ProcessEnv = process.env): TokenServiceConfig {
  return loadConfig({ schema: tokenServiceConfigSchema, env: TOKEN_SERVICE_ENV, source });
}
