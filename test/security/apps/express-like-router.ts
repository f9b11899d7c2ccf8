import type { IncomingMessage } from "node:http";
import type { HandlerName, Routed } from "./handler-run.js";

// The method-override middleware's default header names, plus the two other common spellings.
const METHOD_OVERRIDE_HEADERS = ["x-http-method-override", "x-http-method", "x-method-override"];
// Symfony and IIS URL-rewrite modules take the request URL from these when present.
const REWRITE_HEADERS = ["x-original-url", "x-rewrite-url"];
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

interface Route {
  /** `*` for any method (`app.all` / `app.use`); a `GET` route also answers HEAD, as Express does. */
  readonly methods: readonly string[] | "*";
  readonly path: string;
  /** `app.use(path)`: matches the path and everything below it. */
  readonly prefix: boolean;
  readonly handler: HandlerName;
}

const ROUTES: readonly Route[] = [
  { methods: "*", path: "/healthz", prefix: false, handler: "health" },
  { methods: ["GET"], path: "/events", prefix: false, handler: "events" },
  { methods: ["GET"], path: "/ws", prefix: false, handler: "ws" },
  { methods: "*", path: "/admin", prefix: true, handler: "admin" },
  { methods: ["POST"], path: "/cron", prefix: true, handler: "cron" },
  { methods: ["GET"], path: "/items", prefix: false, handler: "items.list" },
  { methods: ["POST", "PUT"], path: "/items", prefix: false, handler: "items.create" },
  { methods: ["DELETE"], path: "/items", prefix: false, handler: "items.delete" },
  { methods: ["GET"], path: "/", prefix: false, handler: "home" },
];

/**
 * An Express-like router, written here rather than depending on Express: it matches the
 * percent-decoded path case-insensitively, ignores a trailing slash, does not resolve dot
 * segments, and honours `X-HTTP-Method-Override` / `X-HTTP-Method` / `X-Method-Override` (on
 * any method, as some API frameworks do; the method-override middleware's default is POST only)
 * and `X-Original-URL` / `X-Rewrite-URL` (as Symfony's and IIS's rewrite support does).
 * OPTIONS gets the framework's automatic answer, which runs no handler.
 */
export function routeExpressLike(req: IncomingMessage): Routed | undefined {
  const rewritten = firstHeader(req, REWRITE_HEADERS);
  const url = rewritten ?? req.url ?? "/";
  const query = url.indexOf("?");
  let path: string;
  try {
    path = decodeURIComponent(query === -1 ? url : url.slice(0, query));
  } catch {
    return undefined; // 400
  }
  path = path.toLowerCase();
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
  const override = firstHeader(req, METHOD_OVERRIDE_HEADERS)?.toUpperCase();
  const method = override !== undefined && KNOWN_METHODS.has(override) ? override : (req.method ?? "GET");
  for (const route of ROUTES) {
    const pathMatches = route.prefix
      ? path === route.path || path.startsWith(`${route.path}/`)
      : path === route.path;
    if (!pathMatches) continue;
    const methodMatches =
      route.methods === "*" ||
      route.methods.includes(method) ||
      (method === "HEAD" && route.methods.includes("GET"));
    if (methodMatches) return { handler: route.handler, method, path };
  }
  return undefined;
}

function firstHeader(req: IncomingMessage, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = req.headers[name];
    if (typeof value === "string") return value;
  }
  return undefined;
}
