// Traefik cannot be installed here (no Debian or npm package; the Go module proxy is not reachable),
// so the Traefik example is tested against a recorded request shape: a small front server that
// does, with the shipped deploy/traefik/latchkey-forward-auth.yml, what Traefik v3's entry point and
// ForwardAuth middleware do, as read in traefik/traefik (master, fd5a576, 2026-07):
// - the entry point: `normalizePath` and `sanitizePath` on the path (traefik-url.ts), client
//   X-Forwarded-* dropped (no trusted IPs);
// - ForwardAuth (`pkg/middlewares/auth/forward.go`, `writeHeader` with trustForwardHeader false):
//   a GET to `address` with the client's headers under Go's canonical names, sorted (Go writes
//   headers by key), minus those `Connection` lists and the hop-by-hop set, minus every managed
//   X-Forwarded-* name in any `_` spelling, plus X-Forwarded-For/-Method/-Proto/-Port/-Host/-Uri
//   of the request; no body, no Content-Length;
// - a 2xx answer: each `authResponseHeaders` name deleted from the request (by canonical name) and
//   copied from the answer, then the request goes to the app with the sanitized URI; any other
//   answer goes to the client with its status, headers (hop-by-hop removed) and body.
// What it does not reproduce: Go's HTTP parser (requests are parsed by Node's), TLS, HTTP/2, and
// WebSocket splicing (an upgrade is forwarded as a plain request).
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parse } from "yaml";
import { traefikRequestUri } from "./traefik-url.js";

/** The shipped example, relative to this file. */
export const TRAEFIK_EXAMPLE = new URL("../../deploy/traefik/latchkey-forward-auth.yml", import.meta.url);

/** One request the front sent to the forward-auth address, as the auth service received it. */
export interface RecordedAuthRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/** The running front. */
export interface TraefikShape {
  readonly port: number;
  /** Every auth request sent so far. */
  readonly authRequests: readonly RecordedAuthRequest[];
  stop(): Promise<void>;
}

interface Router {
  readonly rule: string;
  readonly service: string;
  readonly priority?: number;
  readonly middlewares?: readonly string[];
}

interface ForwardAuthConfig {
  readonly address: string;
  readonly trustForwardHeader?: boolean;
  readonly authRequestHeaders?: readonly string[];
  readonly authResponseHeaders?: readonly string[];
}

// forward.go `hopHeaders`, and what Go's reverse proxy drops on the way to the app.
const HOP_HEADERS = new Set(["Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade"]);
const PROXY_HOP_HEADERS = new Set([
  ...HOP_HEADERS,
  "Proxy-Connection",
  "Proxy-Authenticate",
  "Proxy-Authorization",
]);
// forwardedheaders.XHeadersSet
const MANAGED_X_HEADERS = new Set([
  "X-Forwarded-Proto",
  "X-Forwarded-Scheme",
  "X-Forwarded-For",
  "X-Forwarded-Host",
  "X-Forwarded-Port",
  "X-Forwarded-Server",
  "X-Forwarded-Uri",
  "X-Forwarded-Method",
  "X-Forwarded-Prefix",
  "X-Forwarded-Tls-Client-Cert",
  "X-Forwarded-Tls-Client-Cert-Info",
  "X-Scheme",
  "X-Real-Ip",
]);
// Headers Go's client writes itself rather than from Request.Header (reqWriteExcludeHeader).
const CLIENT_WRITTEN = new Set(["Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer"]);

/** Go's `http.CanonicalHeaderKey`: unchanged when the name has a byte outside a token. */
export function canonicalHeaderKey(name: string): string {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return name;
  let upper = true;
  let out = "";
  for (const char of name) {
    out += upper ? char.toUpperCase() : char.toLowerCase();
    upper = char === "-";
  }
  return out;
}

/** forwardedheaders `isManagedXHeader`: a managed X- name, also spelled with `_`. */
function isManagedXHeader(key: string): boolean {
  if (!key.startsWith("X")) return false;
  if (MANAGED_X_HEADERS.has(key)) return true;
  return key.includes("_") && MANAGED_X_HEADERS.has(canonicalHeaderKey(key.replaceAll("_", "-")));
}

/** The request's headers as Go holds them: canonical names, values in order, names in first-seen order. */
function goHeaders(raw: readonly string[]): Map<string, string[]> {
  const headers = new Map<string, string[]>();
  for (let i = 0; i < raw.length; i += 2) {
    const key = canonicalHeaderKey(raw[i] as string);
    // Go's server moves Host into Request.Host.
    if (key === "Host") continue;
    const values = headers.get(key) ?? [];
    values.push(raw[i + 1] as string);
    headers.set(key, values);
  }
  return headers;
}

/** forward.go `RemoveConnectionHeaders` and `hopHeaders`, on a copy. */
function withoutHopHeaders(headers: Map<string, string[]>, hop: ReadonlySet<string>): Map<string, string[]> {
  const copy = new Map(headers);
  for (const value of headers.get("Connection") ?? []) {
    for (const name of value.split(",")) if (name.trim() !== "") copy.delete(canonicalHeaderKey(name.trim()));
  }
  for (const name of hop) copy.delete(name);
  return copy;
}

const flatten = (headers: Map<string, string[]>, sorted: boolean): [string, string][] => {
  const keys = [...headers.keys()];
  if (sorted) keys.sort();
  return keys.flatMap((key) => (headers.get(key) ?? []).map((value): [string, string] => [key, value]));
};

/**
 * Starts the Traefik-shaped front on a free port: the example's middleware asks the sidecar on
 * `sidecarPort` (the example's address with its port replaced), its service is the app on `appPort`.
 */
export async function startTraefikForwardAuthShape(options: {
  sidecarPort: number;
  appPort: number;
}): Promise<TraefikShape> {
  const example = parse(readFileSync(TRAEFIK_EXAMPLE, "utf8")) as {
    http: {
      middlewares: { latchkey: { forwardAuth: ForwardAuthConfig } };
      routers: Record<string, Router>;
      services: Record<string, { loadBalancer: { servers: { url: string }[] } }>;
    };
  };
  const config = example.http.middlewares.latchkey.forwardAuth;
  // The example's addresses, pointed at the given ports: the sidecar's (forward-auth and proxy) and the app's.
  const sidecarHost = new URL(config.address).host;
  const servicePort = (name: string): number => {
    const url = new URL(example.http.services[name]?.loadBalancer.servers[0]?.url ?? "");
    return url.host === sidecarHost ? options.sidecarPort : options.appPort;
  };
  // Traefik tries routers by priority (default: the rule's length), highest first.
  const routers = Object.values(example.http.routers)
    .map((router) => ({
      ...router,
      matches: ruleMatcher(router.rule),
      order: router.priority ?? router.rule.length,
    }))
    .sort((a, b) => b.order - a.order);
  if (config.trustForwardHeader !== false)
    throw new Error("the front reproduces trustForwardHeader: false only");
  if ((config.authRequestHeaders ?? []).length > 0)
    throw new Error("the front does not reproduce authRequestHeaders");
  const address = new URL(config.address);
  address.port = String(options.sidecarPort);
  const authRequests: RecordedAuthRequest[] = [];

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const uri = traefikRequestUri(req.url ?? "");
    if (uri === undefined) {
      res.writeHead(400).end();
      req.resume();
      return;
    }
    const client = goHeaders(req.rawHeaders);
    const host = req.headers.host ?? "";
    const clientIp = req.socket.remoteAddress ?? "";
    const router = routers.find((candidate) => candidate.matches(uri, client));
    if (router === undefined) {
      res.writeHead(404).end();
      req.resume();
      return;
    }
    if (!router.middlewares?.includes("latchkey")) {
      await proxy(req, res, router.service, uri, client, host, clientIp);
      return;
    }
    // writeHeader(req, forwardReq, trustForwardHeader=false, nil)
    const forward = withoutHopHeaders(client, HOP_HEADERS);
    for (const key of [...forward.keys()])
      if (isManagedXHeader(key) || CLIENT_WRITTEN.has(key)) forward.delete(key);
    forward.set("X-Forwarded-For", [clientIp]);
    forward.set("X-Forwarded-Method", [req.method ?? "GET"]);
    forward.set("X-Forwarded-Proto", ["http"]);
    forward.set("X-Forwarded-Port", [/:(\d+)$/.exec(host)?.[1] ?? "80"]);
    forward.set("X-Forwarded-Host", [host]);
    forward.set("X-Forwarded-Uri", [uri]);
    const authHeaders = flatten(forward, true);
    authRequests.push({ method: "GET", path: address.pathname, headers: authHeaders });
    const auth = await exchange(
      {
        port: Number(address.port),
        method: "GET",
        path: address.pathname,
        headers: [["Host", address.host], ...authHeaders],
      },
      undefined,
    );
    if (auth.status < 200 || auth.status >= 300) {
      req.resume();
      const answer = withoutHopHeaders(goHeaders(auth.rawHeaders), HOP_HEADERS);
      res.writeHead(auth.status, flatten(answer, true).flat());
      res.end(auth.body);
      return;
    }
    const authAnswer = goHeaders(auth.rawHeaders);
    for (const name of config.authResponseHeaders ?? []) {
      const key = canonicalHeaderKey(name);
      client.delete(key);
      const values = authAnswer.get(key);
      if (values !== undefined && values.length > 0) client.set(key, [...values]);
    }
    await proxy(req, res, router.service, uri, client, host, clientIp);
  }

  /** Go's reverse proxy to a service: hop-by-hop out, the entry point's X-Forwarded-* in. */
  async function proxy(
    req: IncomingMessage,
    res: ServerResponse,
    service: string,
    uri: string,
    client: Map<string, string[]>,
    host: string,
    clientIp: string,
  ): Promise<void> {
    const upstream = withoutHopHeaders(client, PROXY_HOP_HEADERS);
    for (const key of [...upstream.keys()]) if (isManagedXHeader(key)) upstream.delete(key);
    upstream.set("X-Forwarded-For", [clientIp]);
    upstream.set("X-Forwarded-Host", [host]);
    upstream.set("X-Forwarded-Port", [/:(\d+)$/.exec(host)?.[1] ?? "80"]);
    upstream.set("X-Forwarded-Proto", ["http"]);
    upstream.set("X-Forwarded-Server", ["traefik-shape"]);
    upstream.set("X-Real-Ip", [clientIp]);
    const app = await exchange(
      {
        port: servicePort(service),
        method: req.method ?? "GET",
        path: uri,
        headers: [["Host", host], ...flatten(upstream, true)],
      },
      req,
    );
    res.writeHead(
      app.status,
      flatten(withoutHopHeaders(goHeaders(app.rawHeaders), PROXY_HOP_HEADERS), true).flat(),
    );
    res.end(app.body);
  }

  server.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    authRequests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A router rule of the forms the example uses: `PathPrefix(`/p`)` and
 * `HeaderRegexp(`Name`, `regex`)` (any value of the header; Go's `(?i)` prefix read as the `i`
 * flag), joined by `||`.
 */
function ruleMatcher(rule: string): (uri: string, headers: Map<string, string[]>) => boolean {
  const alternatives = rule.split("||").map((part) => {
    const prefix = /^\s*PathPrefix\(`([^`]*)`\)\s*$/.exec(part);
    if (prefix) return (uri: string) => uri.startsWith(prefix[1] as string);
    const header = /^\s*HeaderRegexp\(`([^`]*)`,\s*`([^`]*)`\)\s*$/.exec(part);
    if (header) {
      const source = header[2] as string;
      const pattern = source.startsWith("(?i)") ? new RegExp(source.slice(4), "i") : new RegExp(source);
      const key = canonicalHeaderKey(header[1] as string);
      return (_uri: string, headers: Map<string, string[]>) =>
        (headers.get(key) ?? []).some((value) => pattern.test(value));
    }
    throw new Error(`the front does not read the rule ${JSON.stringify(part)}`);
  });
  return (uri, headers) => alternatives.some((matches) => matches(uri, headers));
}

interface Exchanged {
  readonly status: number;
  readonly rawHeaders: string[];
  readonly body: Buffer;
}

function exchange(
  target: { port: number; method: string; path: string; headers: ReadonlyArray<readonly [string, string]> },
  body: IncomingMessage | undefined,
): Promise<Exchanged> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      {
        host: "127.0.0.1",
        port: target.port,
        method: target.method,
        path: target.path,
        headers: target.headers.flat() as string[],
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 502,
            rawHeaders: response.rawHeaders,
            body: Buffer.concat(chunks),
          }),
        );
        response.on("error", reject);
      },
    );
    outgoing.on("error", reject);
    if (body === undefined) outgoing.end();
    else body.pipe(outgoing);
  });
}
