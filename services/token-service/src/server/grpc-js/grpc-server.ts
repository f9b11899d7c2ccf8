import { setMaxListeners } from "node:events";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ChannelOptions, Server, ServerCredentials } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { CallRecord } from "../shared/logging-interceptor.js";
import {
  DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
  type ListenOptions,
  type RunningServer,
  type TlsOptions,
} from "../shared/running-server.js";
import type { ServiceRegistration } from "../shared/service-registration.js";
import { grpcService } from "./grpc-service-definition.js";

/** Options of {@link createGrpcServer}. */
export interface GrpcServerOptions {
  readonly services: readonly ServiceRegistration[];
  readonly listen: ListenOptions;
  readonly tls?: TlsOptions;
  /**
   * PEM CA bundle for client certificates: set = mutual TLS (needs `tls`). A
   * client whose certificate does not chain to it, or that sends none, is
   * refused in the handshake, before any call.
   */
  readonly clientCa?: Buffer;
  readonly logger: Logger;
  /** Largest request message accepted; defaults to 64 KiB. */
  readonly maxReceiveMessageBytes?: number;
  /** Extra grpc-js server options; they win over the defaults here. */
  readonly channelOptions?: ChannelOptions;
  /**
   * Send GOAWAY to a connection this old (grpc-js adds ±10 % jitter), so
   * clients reconnect through the load balancer and new replicas get a share
   * of long-lived connections. Unset or 0: connections live until closed.
   */
  readonly maxConnectionAgeMs?: number;
  /** How long calls in flight on an aged-out connection may still run (default: unlimited). */
  readonly maxConnectionAgeGraceMs?: number;
  /** Told about every finished call (metrics). */
  readonly onCallFinished?: (record: CallRecord) => void;
}

// Pings keep idle connections through NATs and load balancers alive and find
// dead peers within a minute and a half; the rest are grpc-js defaults.
const KEEPALIVE_OPTIONS: ChannelOptions = {
  "grpc.keepalive_time_ms": 60_000,
  "grpc.keepalive_timeout_ms": 20_000,
  "grpc.keepalive_permit_without_calls": 1,
};

/**
 * Starts the native gRPC listener (grpc-js), the fast path for Verify callers:
 * the same registrations as the Connect listener, the same request ids,
 * error mapping and call logs.
 *
 * @example
 * ```ts
 * const grpc = await createGrpcServer({ services, listen: { host: "0.0.0.0", port: 8082 }, logger });
 * await grpc.close(10_000);
 * ```
 */
export async function createGrpcServer(options: GrpcServerOptions): Promise<RunningServer> {
  const { logger } = options;
  const shutdown = new AbortController();
  // Every in-flight call listens to it; that many listeners is expected, not a leak.
  setMaxListeners(0, shutdown.signal);
  const server = new Server({
    "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    ...KEEPALIVE_OPTIONS,
    ...(options.maxConnectionAgeMs ? { "grpc.max_connection_age_ms": options.maxConnectionAgeMs } : {}),
    ...(options.maxConnectionAgeMs && options.maxConnectionAgeGraceMs !== undefined
      ? { "grpc.max_connection_age_grace_ms": options.maxConnectionAgeGraceMs }
      : {}),
    ...options.channelOptions,
  });
  for (const registration of options.services) {
    const { definition, implementation } = grpcService(registration, {
      logger,
      shutdownSignal: shutdown.signal,
      onCallFinished: options.onCallFinished,
    });
    server.addService(definition, implementation);
  }
  if (options.clientCa !== undefined && options.tls === undefined) {
    throw new Error("createGrpcServer: clientCa (mutual TLS) needs tls");
  }
  const credentials = options.tls
    ? ServerCredentials.createSsl(
        options.clientCa ?? null,
        [{ cert_chain: Buffer.from(options.tls.cert), private_key: Buffer.from(options.tls.key) }],
        options.clientCa !== undefined,
      )
    : ServerCredentials.createInsecure();
  const host = options.listen.host.includes(":") ? `[${options.listen.host}]` : options.listen.host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${options.listen.port}`, credentials, (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  logger.info(
    {
      host: options.listen.host,
      port,
      tls: options.tls !== undefined,
      clientCertificates: options.clientCa !== undefined ? "required" : undefined,
    },
    "grpc server listening",
  );

  let closing: Promise<void> | undefined;
  return {
    port,
    close(timeoutMs) {
      closing ??= new Promise<void>((resolve) => {
        // tryShutdown refuses new calls and sends GOAWAY; it completes once in-flight calls end.
        const timer = setTimeout(() => {
          logger.warn({ port }, "shutdown timeout: cancelling in-flight grpc calls");
          shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
          server.forceShutdown();
          resolve();
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }).then(() => logger.info({ port }, "grpc server closed"));
      return closing;
    },
  };
}
