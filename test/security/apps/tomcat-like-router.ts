import type { IncomingMessage } from "node:http";
import type { HandlerName, Routed } from "./handler-run.js";

/**
 * A servlet container's reading of a request, as Tomcat does it: `;params` cut from every
 * segment, then percent-decoding (an encoded `/` or `\` refused), then duplicate slashes
 * merged and dot segments resolved (above the root refused); case-sensitive servlet
 * mappings. HEAD runs a servlet's `doGet`; OPTIONS and TRACE are answered by the container.
 */
export function routeTomcatLike(req: IncomingMessage): Routed | undefined {
  const method = req.method ?? "GET";
  if (method === "OPTIONS" || method === "TRACE") return undefined;
  const url = req.url ?? "/";
  const query = url.indexOf("?");
  const raw = query === -1 ? url : url.slice(0, query);
  const withoutParams = raw
    .split("/")
    .map((segment) => {
      const semicolon = segment.indexOf(";");
      return semicolon === -1 ? segment : segment.slice(0, semicolon);
    })
    .join("/");
  if (/%(2f|5c)/i.test(withoutParams)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(withoutParams);
  } catch {
    return undefined;
  }
  const segments: string[] = [];
  for (const segment of decoded.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (segments.pop() === undefined) return undefined;
      continue;
    }
    segments.push(segment);
  }
  const path = `/${segments.join("/")}`;
  const get = method === "GET" || method === "HEAD";
  const run = (handler: HandlerName): Routed => ({ handler, method, path });
  if (path === "/healthz") return run("health");
  if (path === "/events" && get) return run("events");
  if (path === "/ws" && get) return run("ws");
  if (path === "/admin" || path.startsWith("/admin/")) return run("admin");
  if (path.startsWith("/cron/") && method === "POST") return run("cron");
  if (path === "/items") {
    if (get) return run("items.list");
    if (method === "POST" || method === "PUT") return run("items.create");
    if (method === "DELETE") return run("items.delete");
    return undefined;
  }
  if (path === "/" && get) return run("home");
  return undefined;
}
