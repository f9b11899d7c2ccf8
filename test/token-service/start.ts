// Starts the real token-service for a test: a fresh PostgreSQL database from
// the harness, both listeners on port 0, a fixed root key, and either the
// in-process bus or NATS. Clients for every protocol come with it.
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import type { KeyEventBus } from "@latchkey/events";
import { AuditService, KeychainService, TeamService, TokenService } from "@latchkey/proto";
import pg from "pg";
import { type Logger, pino } from "pino";
import {
  loadTokenServiceConfig,
  TOKEN_SERVICE_ENV,
  type TokenServiceConfig,
} from "../../services/token-service/src/config.js";
import {
  startTokenService,
  type TokenServiceHandle,
} from "../../services/token-service/src/token-service.js";
import { freshDatabaseUrl } from "../harness/index.js";

/** The root key every test service uses unless told otherwise (≥ 32 characters). */
export const ROOT_KEY = "test-root-key-0123456789abcdefghijklmnopqrstuvwxyz";

/** Options of {@link startTestService}. */
export interface TestServiceOptions {
  /** Reuse a database (a second replica, a restart); a fresh one when left out. */
  databaseUrl?: string;
  /** NATS URL; the in-process bus when left out. */
  natsUrl?: string;
  /** Root key; `null` leaves LATCHKEY_ROOT_KEY unset (a generated one). */
  rootKey?: string | null;
  /** Further settings, as the config schema names them. */
  settings?: Partial<Record<keyof TokenServiceConfig, unknown>>;
  /** A bus shared with other services (replicas in one process); the configured one when left out. */
  bus?: KeyEventBus;
  /** Where log lines go; a silent logger when left out. */
  logger?: Logger;
}

/** A running service with clients for it. */
export interface TestService {
  readonly handle: TokenServiceHandle;
  readonly databaseUrl: string;
  readonly connectUrl: string;
  readonly grpcUrl: string;
  /** A `pg` pool on the service's database, for asserting rows. */
  readonly sql: pg.Pool;
  /** Connect-protocol clients with the given bearer key (root when left out, none for `null`). */
  tokens(bearer?: string | null, transport?: Transport): Client<typeof TokenService>;
  teams(bearer?: string | null, transport?: Transport): Client<typeof TeamService>;
  keychains(bearer?: string | null, transport?: Transport): Client<typeof KeychainService>;
  audit(bearer?: string | null, transport?: Transport): Client<typeof AuditService>;
  /** Creates a team and an admin key in it (scopes `admin` plus `extraScopes`). */
  teamWithAdmin(
    name: string,
    extraScopes?: string[],
  ): Promise<{ teamId: string; adminKey: string; adminKeyId: string }>;
  close(): Promise<void>;
}

/** Transports for each protocol against a service. */
export function transportsFor(service: { connectUrl: string; grpcUrl: string }): Record<string, Transport> {
  return {
    connect: createConnectTransport({ baseUrl: service.connectUrl, httpVersion: "2" }),
    grpc: createGrpcTransport({ baseUrl: service.connectUrl }),
    "grpc-web": createGrpcWebTransport({ baseUrl: service.connectUrl, httpVersion: "2" }),
    "grpc-native": createGrpcTransport({ baseUrl: service.grpcUrl }),
  };
}

/**
 * Builds the config the way a deployment does, from environment variables
 * (so the env names are exercised too), with test defaults: port 0 for both
 * listeners, the fixed root key, silent logs.
 */
export function testConfig(options: TestServiceOptions & { databaseUrl: string }): TokenServiceConfig {
  const rootKey = options.rootKey === undefined ? ROOT_KEY : options.rootKey;
  const settings: Partial<Record<keyof TokenServiceConfig, unknown>> = {
    listen: "127.0.0.1:0",
    grpcListen: "127.0.0.1:0",
    databaseUrl: options.databaseUrl,
    logLevel: "silent",
    shutdownTimeoutMs: 2_000,
    dbPoolMax: 5,
    ...(rootKey === null ? {} : { rootKey }),
    ...(options.natsUrl ? { natsUrl: options.natsUrl } : {}),
    ...options.settings,
  };
  const env: Record<string, string> = {};
  for (const [field, value] of Object.entries(settings)) {
    env[TOKEN_SERVICE_ENV[field as keyof typeof TOKEN_SERVICE_ENV]] = String(value);
  }
  return loadTokenServiceConfig(env);
}

/**
 * Starts the token-service on a fresh database (or `options.databaseUrl`).
 *
 * @example
 * ```ts
 * const service = await startTestService();
 * const { token } = await service.tokens().issue({ teamId, name: "a" });
 * await service.close();
 * ```
 */
export async function startTestService(options: TestServiceOptions = {}): Promise<TestService> {
  const databaseUrl = options.databaseUrl ?? (await freshDatabaseUrl("ts"));
  const config = testConfig({ ...options, databaseUrl });
  const handle = await startTokenService(config, {
    logger: options.logger ?? pino({ level: "silent" }),
    ...(options.bus ? { bus: options.bus } : {}),
  });
  const connectUrl = `http://127.0.0.1:${handle.port}`;
  const grpcUrl = `http://127.0.0.1:${handle.grpcPort}`;
  const defaultTransport = createConnectTransport({ baseUrl: connectUrl, httpVersion: "2" });
  const sql = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const rootKey = options.rootKey === undefined ? ROOT_KEY : options.rootKey;
  const headersFor = (bearer: string | null | undefined) => {
    const key = bearer === undefined ? rootKey : bearer;
    return key ? { authorization: `Bearer ${key}` } : {};
  };
  const authed = (bearer: string | null | undefined, transport: Transport): Transport => {
    const headers = headersFor(bearer);
    return {
      unary: (method, signal, timeoutMs, header, input, contextValues) => {
        const merged = new Headers(header);
        for (const [k, v] of Object.entries(headers)) if (!merged.has(k)) merged.set(k, v);
        return transport.unary(method, signal, timeoutMs, merged, input, contextValues);
      },
      stream: (method, signal, timeoutMs, header, input, contextValues) => {
        const merged = new Headers(header);
        for (const [k, v] of Object.entries(headers)) if (!merged.has(k)) merged.set(k, v);
        return transport.stream(method, signal, timeoutMs, merged, input, contextValues);
      },
    };
  };
  const service: TestService = {
    handle,
    databaseUrl,
    connectUrl,
    grpcUrl,
    sql,
    tokens: (bearer, transport = defaultTransport) => createClient(TokenService, authed(bearer, transport)),
    teams: (bearer, transport = defaultTransport) => createClient(TeamService, authed(bearer, transport)),
    keychains: (bearer, transport = defaultTransport) =>
      createClient(KeychainService, authed(bearer, transport)),
    audit: (bearer, transport = defaultTransport) => createClient(AuditService, authed(bearer, transport)),
    async teamWithAdmin(name, extraScopes = []) {
      const { team } = await service.teams(rootKey ?? undefined).createTeam({ name });
      const teamId = team?.id ?? "";
      const issued = await service.tokens(rootKey ?? undefined).issue({
        teamId,
        name: `${name}-admin`,
        scopes: ["admin", ...extraScopes],
      });
      return { teamId, adminKey: issued.token, adminKeyId: issued.key?.id ?? "" };
    },
    async close() {
      await handle.close();
      await sql.end();
    },
  };
  return service;
}
