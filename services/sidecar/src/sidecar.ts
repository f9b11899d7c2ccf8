import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo, Server } from "node:net";
import type { Duplex } from "node:stream";
import { checkNatsClientFiles, readPemFile, readTlsKeyPair, type TlsKeyPair } from "@latchkey/config";
import { createNatsKeyEventBus, type KeyEventBus } from "@latchkey/events";
import { tracingEnabled } from "@latchkey/telemetry";
import { createKeyFormats } from "@latchkey/token";
import { createVerifier } from "@latchkey/verifier";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { Pool } from "undici";
import { createAccessLog, createSidecarLogger } from "./access-log.js";
import { createAdminServer } from "./admin-server.js";
import { createAuthorizer } from "./authorize.js";
import { SIDECAR_ENV, type SidecarConfig } from "./config.js";
import { createDecisionUsage } from "./decision-usage.js";
import { createCheckHandler } from "./ext-authz/check-handler.js";
import { type ExtAuthzServer, startExtAuthzServer } from "./ext-authz/ext-authz-server.js";
import { createForwardAuthRoute, FORWARD_AUTH_PATH } from "./forward-auth.js";
import type { KeyChecker } from "./key-checker.js";
import { LiveConnections } from "./live-connections.js";
import { createSidecarMetrics } from "./metrics.js";
import { createPlainHttpRefusal } from "./plain-http-refusal.js";
import { loadPolicy, type Policy } from "./policy/policy.js";
import { createRequestHandler, type LocalRoute } from "./proxy/http-proxy.js";
import type { ProxyContext } from "./proxy/proxy-context.js";
import { createUpgradeHandler } from "./proxy/websocket-proxy.js";
import { NO_RATE_LIMITS } from "./rate-limit/rate-limit-step.js";
import { startRateLimits } from "./rate-limit/start-rate-limits.js";
import { createHttpsListener, type HttpsListener } from "./tls/https-listener.js";
import { createTlsMetrics } from "./tls/tls-metrics.js";

/** Options of {@link startSidecar} that are not configuration. */
export interface StartSidecarOptions {
  /**
   * Checks keys. Default: a `@latchkey/verifier` for `tokenServiceUrl`, with key
   * events from `events` or else from `natsUrl` when set. Tests pass a stand-in.
   */
  readonly keyChecker?: KeyChecker;
  /**
   * The key events the default verifier follows, instead of connecting to
   * `natsUrl` (`npm start` passes the token-service's in-process bus). Not
   * closed by the sidecar.
   */
  readonly events?: KeyEventBus;
  /** Default: JSON on stdout at `logLevel`. */
  readonly logger?: Logger;
  /** Where metrics go (default: a new registry, served on /metrics). */
  readonly registry?: Registry;
  /** The route policy (default: read from `config.policy`, or the `all-private` preset). */
  readonly policy?: Policy;
  /** Where `secret` rules read their secrets (default `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
}

/** A running sidecar. */
export interface SidecarHandle {
  /** Port of the proxy (and forward-auth) listener. */
  readonly port: number;
  /** Port of the admin listener. */
  readonly adminPort: number;
  /** Port of the HTTPS listener, when TLS is configured. */
  readonly tlsPort: number | undefined;
  /** Port of the Envoy ext_authz (gRPC) listener; undefined when `extAuthzListen` is unset. */
  readonly extAuthzPort: number | undefined;
  readonly registry: Registry;
  readonly logger: Logger;
  /** Open SSE streams and WebSockets. */
  liveConnectionCount(): number;
  /**
   * Stops accepting, lets in-flight requests finish (up to `shutdownTimeoutMs`),
   * closes live streams and WebSockets (1001), then the upstream pool and the
   * verifier it created.
   */
  close(): Promise<void>;
}

/**
 * Starts the sidecar: the proxy and forward-auth listener, the admin listener,
 * the Envoy ext_authz listener when `extAuthzListen` is set, and (unless one
 * is given) a verifier.
 *
 * @example
 * ```ts
 * const sidecar = await startSidecar(loadSidecarConfig());
 * process.once("SIGTERM", () => sidecar.close());
 * ```
 * @throws PolicyError when the policy file is invalid.
 */
export async function startSidecar(
  config: SidecarConfig,
  options: StartSidecarOptions = {},
): Promise<SidecarHandle> {
  const logger = options.logger ?? createSidecarLogger(config.logLevel);
  const registry = options.registry ?? new Registry();
  const policy = options.policy ?? loadPolicy(config.policy, options.env);
  // Certificates first: a bad pair stops start-up, naming its setting, before anything connects.
  const serverPair = keyPair(config, "tlsCert", "tlsKey");
  const clientPair = keyPair(config, "tokenServiceClientCert", "tokenServiceClientKey");
  const cleanups: Array<() => Promise<void>> = [];
  let keyChecker = options.keyChecker;
  if (keyChecker === undefined) {
    let events = options.events;
    if (events === undefined && config.natsUrl !== undefined) {
      const bus = createNatsKeyEventBus({
        servers: config.natsUrl,
        name: "latchkey-sidecar",
        ...checkNatsClientFiles(config),
        logger,
      });
      cleanups.push(() => bus.close());
      events = bus;
    }
    const rootCerts =
      config.tokenServiceCaFile === undefined
        ? undefined
        : readPemFile(config.tokenServiceCaFile, "LATCHKEY_TOKEN_SERVICE_CA_FILE");
    const verifier = createVerifier({
      tokenService: config.tokenServiceUrl.href,
      ...(rootCerts || clientPair
        ? {
            grpc: {
              tls: {
                ...(rootCerts ? { rootCerts } : {}),
                ...(clientPair ? { certChain: clientPair.cert, privateKey: clientPair.key } : {}),
              },
            },
          }
        : {}),
      events,
      ...(config.keyFormats ? { formats: createKeyFormats({ formats: config.keyFormats }) } : {}),
      maxEntries: config.cacheMaxEntries,
      ttlMs: config.cacheTtlMs,
      maxStaleMs: config.maxStaleMs,
      serveStaleOnErrorMs: config.serveStaleOnErrorMs,
      // The sidecar records each request once, at its decision (decision-usage.ts).
      usageCounting: "caller",
      usageFlushMs: config.usageFlushMs,
      usageBacklogMax: config.usageBacklogMax,
      registry,
      label: "latchkey-sidecar",
      onError: (error) => logger.warn({ err: error }, "verifier error"),
    });
    cleanups.unshift(() => verifier.close());
    keyChecker = verifier;
  }

  const checker = keyChecker;
  const metrics = createSidecarMetrics(registry, config.enforcement, () => checker.isHealthy());
  const liveConnections = new LiveConnections({
    keyChecker,
    logger,
    recheckIntervalMs: config.maxStaleMs,
    onCountChange: (kind, delta) => metrics.liveConnections(kind, delta),
    onCutOff: (kind) => metrics.liveCutOff(kind),
  });
  const upstream = new Pool(config.upstream.origin, {
    connections: config.upstreamConnections,
    pipelining: 1,
    headersTimeout: config.upstreamHeadersTimeoutMs,
    bodyTimeout: 0,
  });
  const basePath = config.upstream.pathname.replace(/\/+$/, "");
  const isTrusted = (address: string): boolean =>
    address !== "" && config.trustedProxies.list.check(address, address.includes(":") ? "ipv6" : "ipv4");
  const rateLimits = startRateLimits({ config, policy, registry, logger, isTrusted });
  cleanups.push(() => rateLimits.close());
  const accessLog = createAccessLog(logger);
  const context: ProxyContext = {
    upstream,
    upstreamUrl: config.upstream,
    basePath,
    upstreamHeadersTimeoutMs: config.upstreamHeadersTimeoutMs,
    authorize: createAuthorizer({ policy, keyChecker, maxCredentialBytes: config.maxCredentialBytes }),
    canonicalHost: policy.matchesHosts && config.enforcement !== "disabled",
    rateLimit: config.enforcement === "disabled" ? NO_RATE_LIMITS : rateLimits.step,
    mode: config.enforcement,
    isTrusted,
    liveConnections,
    metrics,
    recordUsage: createDecisionUsage(keyChecker),
    accessLog,
    logger,
    // Read once: with tracing off no request pays for a tracing step.
    tracing: tracingEnabled() ? { parents: config.traceParents, isTrusted } : undefined,
  };
  const localRoutes = new Map<string, LocalRoute>([[FORWARD_AUTH_PATH, createForwardAuthRoute(context)]]);
  const onRequest = createRequestHandler(context, localRoutes);
  const onUpgrade = createUpgradeHandler(context);
  const onClientError = (error: Error, socket: Duplex) => {
    if (socket.writable)
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    else socket.destroy(error);
  };
  const plain = config.plainHttp === "refuse" ? createPlainHttpRefusal(context) : { onRequest, onUpgrade };
  const server = createServer(plain.onRequest);
  server.on("upgrade", plain.onUpgrade);
  server.on("clientError", onClientError);
  const https: HttpsListener | undefined =
    serverPair === undefined || config.tlsCert === undefined || config.tlsKey === undefined
      ? undefined
      : createHttpsListener({
          certFile: config.tlsCert,
          keyFile: config.tlsKey,
          pair: serverPair,
          onRequest,
          onUpgrade,
          onClientError,
          logger,
          onReload: createTlsMetrics(registry, serverPair),
        });
  // Upgraded sockets leave the HTTP servers' bookkeeping; shutdown has to find them itself.
  const upgraded = new Set<Duplex>();
  for (const listener of [server, https?.server]) {
    listener?.on("upgrade", (_req, socket: Duplex) => {
      upgraded.add(socket);
      socket.once("close", () => upgraded.delete(socket));
    });
  }
  let shuttingDown = false;
  const admin = createAdminServer({
    registry,
    logger,
    isReady: () => !shuttingDown,
    tokenServiceReachable: () => checker.isHealthy(),
  });

  await listen(server, config.listen.host, config.listen.port);
  let extAuthz: ExtAuthzServer | undefined;
  try {
    await listen(admin, config.adminListen.host, config.adminListen.port);
    if (https) await listen(https.server, config.tlsListen.host, config.tlsListen.port);
    if (config.extAuthzListen !== undefined) {
      extAuthz = await startExtAuthzServer({
        listen: config.extAuthzListen,
        check: createCheckHandler(context),
        logger,
      });
    }
  } catch (error) {
    server.close();
    admin.close();
    await https?.close(0);
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const adminPort = (admin.address() as AddressInfo).port;
  const tlsPort = https === undefined ? undefined : (https.server.address() as AddressInfo).port;
  logger.info(
    {
      port,
      adminPort,
      tlsPort,
      plainHttp: https === undefined ? undefined : config.plainHttp,
      extAuthzPort: extAuthz?.port,
      upstream: config.upstream.origin + basePath,
      enforcement: config.enforcement,
      policy: options.policy !== undefined ? "(given)" : (config.policy ?? "preset all-private"),
      rules: policy.rules.map((rule) => rule.label),
      trustedProxies: config.trustedProxies.entries,
      tracing: tracingEnabled() ? { traceParents: config.traceParents } : "off",
    },
    "sidecar listening",
  );
  for (const warning of policy.warnings)
    logger.warn({ policy: config.policy ?? "(given)" }, `policy: ${warning}`);

  let closing: Promise<void> | undefined;
  return {
    port,
    adminPort,
    tlsPort,
    extAuthzPort: extAuthz?.port,
    registry,
    logger,
    liveConnectionCount: () => liveConnections.size,
    close() {
      closing ??= (async () => {
        shuttingDown = true;
        const drained = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const httpsDrained = https?.close(config.shutdownTimeoutMs);
        liveConnections.close();
        const timer = setTimeout(() => {
          server.closeAllConnections();
          for (const socket of upgraded) socket.destroy();
        }, config.shutdownTimeoutMs);
        await Promise.all([drained, httpsDrained, extAuthz?.close(config.shutdownTimeoutMs)]);
        clearTimeout(timer);
        await upstream.destroy();
        for (const cleanup of cleanups) {
          await cleanup().catch((error: unknown) => logger.warn({ err: error }, "shutdown step failed"));
        }
        await new Promise<void>((resolve) => admin.close(() => resolve()));
        accessLog.flush();
        logger.info("sidecar stopped");
        await new Promise<void>((resolve) => logger.flush(() => resolve()));
      })();
      return closing;
    },
  };
}

/** The certificate and key two settings name, read and checked; undefined when they are unset. */
function keyPair(
  config: SidecarConfig,
  cert: "tlsCert" | "tokenServiceClientCert",
  key: "tlsKey" | "tokenServiceClientKey",
): TlsKeyPair | undefined {
  const certFile = config[cert];
  const keyFile = config[key];
  if (certFile === undefined || keyFile === undefined) return undefined;
  return readTlsKeyPair(certFile, keyFile, [SIDECAR_ENV[cert], SIDECAR_ENV[key]]);
}

async function listen(server: Server, host: string, port: number): Promise<void> {
  server.listen(port, host);
  await Promise.race([
    once(server, "listening"),
    once(server, "error").then(([error]) => Promise.reject(error)),
  ]);
}
