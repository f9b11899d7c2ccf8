import type { IncomingMessage } from "node:http";
import type { Routed } from "./handler-run.js";

/**
 * A hand-written app's routing: the raw request path (no decoding, no normalization,
 * case-sensitive) compared with string literals and prefixes, the method only checked
 * where the handler cares. The events, stream and admin handlers run for any method,
 * as they do in many small apps.
 */
export function routeRawPath(req: IncomingMessage): Routed | undefined {
  const method = req.method ?? "GET";
  const url = req.url ?? "/";
  const query = url.indexOf("?");
  const path = query === -1 ? url : url.slice(0, query);
  const run = (handler: Routed["handler"]): Routed => ({ handler, method, path });
  if (path === "/healthz") return run("health");
  if (path === "/events") return run("events");
  if (path === "/ws") return run("ws");
  if (path === "/admin" || path.startsWith("/admin/")) return run("admin");
  if (path.startsWith("/cron/") && method === "POST") return run("cron");
  if (path === "/items") {
    if (method === "GET" || method === "HEAD") return run("items.list");
    if (method === "POST" || method === "PUT") return run("items.create");
    if (method === "DELETE") return run("items.delete");
    return undefined;
  }
  if (path === "/") return run("home");
  return undefined;
}
