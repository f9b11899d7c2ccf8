import { BlockList, isIP } from "node:net";
import {
  checkNatsClientSettings,
  integerSetting,
  listenAddress,
  loadConfig,
  NATS_CLIENT_ENV,
  natsClientSettings,
  structuredSetting,
} from "@latchkey/config";
import { type KeyFormatSpec, validateKeyFormats } from "@latchkey/token";
import { z } from "zod";

/** What the plain-HTTP listener does when HTTPS is on: serve as usual, or refuse every request (`https_required`). */
export const PLAIN_HTTP_MODES = ["serve", "refuse"] as const;

/** Whose incoming trace context the sidecar continues when tracing is on (see `request-span.ts`). */
export const TRACE_PARENT_MODES = ["trusted", "always", "never"] as const;

/** How the sidecar acts on its decisions; `log` lets a team roll it out and watch the counts first. */
export const ENFORCEMENT_MODES = ["disabled", "log", "enforce"] as const;

/** One of {@link ENFORCEMENT_MODES}. */
export type EnforcementMode = (typeof ENFORCEMENT_MODES)[number];

const httpUrl = z
  .string()
  .url("must be an http:// or https:// URL")
  .refine((value) => /^https?:$/.test(new URL(value).protocol), "must be an http:// or https:// URL")
  .transform((value) => new URL(value));

/**
 * Comma-separated IP addresses and CIDR ranges, parsed into a `BlockList` so a
 * peer address is checked without string games.
 */
const addressList = z.string().transform((value, ctx) => {
  const list = new BlockList();
  const entries: string[] = [];
  for (const raw of value.split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const [address = "", bits] = entry.split("/");
    const family = isIP(address);
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
      ctx.addIssue({ code: "custom", message: `"${entry}" is not an IP address or CIDR range` });
      return z.NEVER;
    }
    list.addSubnet(address, prefix, family === 6 ? "ipv6" : "ipv4");
    // An IPv4 client seen on a dual-stack socket arrives as ::ffff:a.b.c.d.
    if (family === 4) list.addSubnet(`::ffff:${address}`, 96 + prefix, "ipv6");
    entries.push(entry);
  }
  return { list, entries } as TrustedProxies;
});

/** Addresses whose forwarding headers (X-Forwarded-*, X-Original-*) the sidecar believes. */
export interface TrustedProxies {
  readonly list: BlockList;
  /** The entries as configured, for logs. */
  readonly entries: readonly string[];
}

/**
 * The sidecar's settings. Each one says why it exists; the README's
 * configuration table lists the same names. Parsed once at start-up.
 */
export const sidecarConfigSchema = z
  .object({
    // Where clients connect: the proxy and the forward-auth endpoint.
    listen: listenAddress.prefault("0.0.0.0:8080"),
    // /healthz, /readyz and /metrics, kept off the client-facing port.
    adminListen: listenAddress.prefault("0.0.0.0:9090"),
    // ---- HTTPS (issue 13) ----
    // Where HTTPS clients connect when tlsCert/tlsKey are set: HTTP/2 for clients that offer it (ALPN),
    // HTTP/1.1 (and WebSocket upgrades) for the rest; the same proxy and forward-auth as `listen`.
    tlsListen: listenAddress.prefault("0.0.0.0:8443"),
    // PEM certificate chain and private key of the HTTPS listener, both or neither (cert-manager's
    // tls.crt/tls.key). Re-read when the files change; open connections keep the old certificate.
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    // `refuse`: the plain listener answers every request 403 https_required (seed 001: "Plain HTTP
    // requests will be rejected"), so a client learns why rather than meeting a closed port; `serve`:
    // it proxies as usual (forward-auth callers on loopback, a TLS-terminating load balancer).
    plainHttp: z.enum(PLAIN_HTTP_MODES).default("serve"),
    // The app the sidecar protects; every allowed request goes there.
    upstream: httpUrl,
    // YAML route policy; unset means the `all-private` preset (every route needs a key with `read`),
    // the safe choice when nobody has said which routes are public.
    policy: z.string().min(1).optional(),
    // disabled: proxy without checking; log: check and log but never refuse; enforce: refuse.
    enforcement: z.enum(ENFORCEMENT_MODES).default("enforce"),
    // The token-service's native gRPC listener, where the verifier sends Verify on a cache miss.
    tokenServiceUrl: httpUrl.prefault("http://127.0.0.1:8082"),
    // PEM bundle of the CA that signed the token-service's certificate, for an https:// URL
    // (cert-manager's ca.crt); unset = the system roots. Verify carries raw keys, so it must be TLS
    // whenever it leaves the pod.
    tokenServiceCaFile: z.string().min(1).optional(),
    // Client certificate and key for a token-service that requires mutual TLS on its gRPC port
    // (its LATCHKEY_GRPC_CLIENT_CA_FILE); both or neither, with an https:// URL.
    tokenServiceClientCert: z.string().min(1).optional(),
    tokenServiceClientKey: z.string().min(1).optional(),
    // NATS for key events (revocations reach the cache at once); unset means TTL and re-verify only.
    natsUrl: z.string().min(1).optional(),
    // Its NATS user (nkey seed file; the verifier role) and TLS to NATS.
    ...natsClientSettings,
    // Peers whose X-Forwarded-* and X-Original-* headers are believed (nginx, Traefik, a load balancer).
    trustedProxies: addressList.prefault("127.0.0.1,::1"),
    // With tracing on (OTEL_TRACES_EXPORTER): whose incoming `traceparent` the sidecar continues, and
    // so whose sampled flag it obeys. `trusted`: only trustedProxies' (an outsider's `…-01` cannot
    // force this sidecar to record and export its requests); `always`: anyone's (Envoy's default);
    // `never`: every request starts a trace here.
    traceParents: z.enum(TRACE_PARENT_MODES).default("trusted"),
    // Envoy external authorization: `envoy.service.auth.v3.Authorization/Check` over gRPC (h2c) for
    // Envoy, Istio and Envoy Gateway, decided like forward-auth; unset means no such port. Its
    // callers must be in trustedProxies, since they vouch for the request they describe.
    extAuthzListen: listenAddress.optional(),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    // Verifier cache bound: answers kept in memory.
    cacheMaxEntries: integerSetting(0, 10_000_000).default(10_000),
    // How long a cached answer is used before the token-service is asked again.
    cacheTtlMs: integerSetting(0, 3_600_000).default(60_000),
    // While cut off from key events, cached answers older than this are re-verified, so a
    // revocation reaches this sidecar within this bound even when NATS is down.
    maxStaleMs: integerSetting(0, 3_600_000).default(2_000),
    // When the token-service is unreachable, serve a cached VALID answer up to this old (0: never).
    serveStaleOnErrorMs: integerSetting(0, 86_400_000).default(0),
    // Per-key usage is reported to the token-service in one batch this often (needs NATS_URL).
    usageFlushMs: integerSetting(100, 60_000).default(1_000),
    // Usage batches kept while NATS cannot take them; beyond this the oldest is dropped (and counted).
    usageBacklogMax: integerSetting(1, 1_000_000).default(600),
    // Credentials longer than this are refused without a lookup (Latchkey keys are far shorter).
    maxCredentialBytes: integerSetting(16, 8192).default(512),
    // The key formats the deployment accepts, as the token-service's `keyFormats` lists them; a key
    // matching none is refused (401) with no lookup. No signing keys here: the token-service checks
    // signatures, so no sidecar holds a secret that can sign keys. Unset = latchkey keys of any prefix.
    keyFormats: structuredSetting((value) => {
      validateKeyFormats(value);
      return value as KeyFormatSpec[];
    }).optional(),
    // Keep-alive connections to the upstream.
    upstreamConnections: integerSetting(1, 10_000).default(128),
    // How long to wait for the upstream's response headers; bodies (SSE) have no idle limit.
    upstreamHeadersTimeoutMs: integerSetting(100, 3_600_000).default(60_000),
    // YAML rate-limit file: tiers (a key's `tier` metadata) and per-scope defaults; unset means only
    // the policy rules' own `rateLimit` limits apply.
    rateLimits: z.string().min(1).optional(),
    // How often each sidecar publishes its rate-limit counts to the others over NATS; the overshoot
    // of a limit across sidecars is about (sidecars − 1) × per-sidecar rate × this.
    rateLimitSyncMs: integerSetting(10, 10_000).default(50),
    // Sidecars assumed to share limits, at least: while NATS is down each admits limit / peers
    // (the peers it last heard, or this if more), and without NATS it always does.
    rateLimitExpectedPeers: integerSetting(1, 10_000).default(1),
    // Rate-limit counters kept in memory at most (keys × limits, client addresses × limits); the
    // oldest is dropped beyond it, so a flood of addresses cannot exhaust memory.
    rateLimitMaxCounters: integerSetting(1_000, 10_000_000).default(100_000),
    // How long SIGTERM waits for in-flight requests before closing connections.
    shutdownTimeoutMs: integerSetting(0, 300_000).default(10_000),
  })
  .strict()
  .superRefine((value, ctx) => {
    checkNatsClientSettings(value, ctx);
    if (value.tokenServiceCaFile !== undefined && value.tokenServiceUrl.protocol !== "https:") {
      ctx.addIssue({
        code: "custom",
        path: ["tokenServiceCaFile"],
        message: "is only used with an https:// LATCHKEY_TOKEN_SERVICE_URL",
      });
    }
    bothOrNeither(ctx, value, "tlsCert", "tlsKey", "LATCHKEY_SIDECAR_TLS_CERT and LATCHKEY_SIDECAR_TLS_KEY");
    bothOrNeither(
      ctx,
      value,
      "tokenServiceClientCert",
      "tokenServiceClientKey",
      "LATCHKEY_TOKEN_SERVICE_CLIENT_CERT and LATCHKEY_TOKEN_SERVICE_CLIENT_KEY",
    );
    if (value.tokenServiceClientCert !== undefined && value.tokenServiceUrl.protocol !== "https:") {
      ctx.addIssue({
        code: "custom",
        path: ["tokenServiceClientCert"],
        message: "a client certificate needs an https:// LATCHKEY_TOKEN_SERVICE_URL",
      });
    }
    if (value.plainHttp === "refuse" && value.tlsCert === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["plainHttp"],
        message: "refuse needs HTTPS: set LATCHKEY_SIDECAR_TLS_CERT and LATCHKEY_SIDECAR_TLS_KEY",
      });
    }
  });

/** Reports `first` (or `second`) when only one of a pair of settings is given. */
function bothOrNeither(
  ctx: z.RefinementCtx,
  value: Partial<Record<string, unknown>>,
  first: string,
  second: string,
  names: string,
): void {
  if ((value[first] === undefined) === (value[second] === undefined)) return;
  ctx.addIssue({
    code: "custom",
    path: [value[first] === undefined ? first : second],
    message: `${names} must be set together`,
  });
}

/** The sidecar's parsed configuration. */
export type SidecarConfig = z.output<typeof sidecarConfigSchema>;

/** The sidecar's configuration before parsing, e.g. for tests and `npm start`. */
export type SidecarConfigInput = z.input<typeof sidecarConfigSchema>;

/** Environment variable of each setting. */
export const SIDECAR_ENV = {
  listen: "LATCHKEY_SIDECAR_LISTEN",
  adminListen: "LATCHKEY_SIDECAR_ADMIN_LISTEN",
  tlsListen: "LATCHKEY_SIDECAR_TLS_LISTEN",
  tlsCert: "LATCHKEY_SIDECAR_TLS_CERT",
  tlsKey: "LATCHKEY_SIDECAR_TLS_KEY",
  plainHttp: "LATCHKEY_SIDECAR_PLAIN_HTTP",
  upstream: "LATCHKEY_UPSTREAM",
  policy: "LATCHKEY_POLICY",
  enforcement: "LATCHKEY_ENFORCEMENT",
  tokenServiceUrl: "LATCHKEY_TOKEN_SERVICE_URL",
  tokenServiceCaFile: "LATCHKEY_TOKEN_SERVICE_CA_FILE",
  tokenServiceClientCert: "LATCHKEY_TOKEN_SERVICE_CLIENT_CERT",
  tokenServiceClientKey: "LATCHKEY_TOKEN_SERVICE_CLIENT_KEY",
  natsUrl: "NATS_URL",
  ...NATS_CLIENT_ENV,
  trustedProxies: "LATCHKEY_TRUSTED_PROXIES",
  traceParents: "LATCHKEY_TRACE_PARENTS",
  extAuthzListen: "LATCHKEY_SIDECAR_EXTAUTHZ_LISTEN",
  logLevel: "LATCHKEY_LOG_LEVEL",
  cacheMaxEntries: "LATCHKEY_CACHE_MAX_ENTRIES",
  cacheTtlMs: "LATCHKEY_CACHE_TTL_MS",
  maxStaleMs: "LATCHKEY_MAX_STALE_MS",
  serveStaleOnErrorMs: "LATCHKEY_SERVE_STALE_ON_ERROR_MS",
  usageFlushMs: "LATCHKEY_USAGE_FLUSH_MS",
  usageBacklogMax: "LATCHKEY_USAGE_BACKLOG_MAX",
  maxCredentialBytes: "LATCHKEY_MAX_CREDENTIAL_BYTES",
  keyFormats: "LATCHKEY_KEY_FORMATS",
  upstreamConnections: "LATCHKEY_UPSTREAM_CONNECTIONS",
  upstreamHeadersTimeoutMs: "LATCHKEY_UPSTREAM_HEADERS_TIMEOUT_MS",
  rateLimits: "LATCHKEY_RATE_LIMITS",
  rateLimitSyncMs: "LATCHKEY_RATE_LIMIT_SYNC_MS",
  rateLimitExpectedPeers: "LATCHKEY_RATE_LIMIT_EXPECTED_PEERS",
  rateLimitMaxCounters: "LATCHKEY_RATE_LIMIT_MAX_COUNTERS",
  shutdownTimeoutMs: "LATCHKEY_SHUTDOWN_TIMEOUT_MS",
} as const satisfies Record<keyof SidecarConfigInput, string>;

/**
 * Reads the sidecar's configuration from defaults, the `LATCHKEY_CONFIG` file
 * and the environment.
 *
 * @throws ConfigError naming each bad setting.
 */
export function loadSidecarConfig(source: NodeJS.ProcessEnv = process.env): SidecarConfig {
  return loadConfig({ schema: sidecarConfigSchema, env: SIDECAR_ENV, source });
}

/**
 * Parses a configuration given as an object (field names, not variables), for
 * tests and for `npm start`, which builds the stack in one process.
 */
export function parseSidecarConfig(input: SidecarConfigInput): SidecarConfig {
  return sidecarConfigSchema.parse(input);
}
