import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { answer, type NodeResponse } from "../connect/node-answer.js";
import { CONSOLE_PATH, type ConsoleAssets } from "./console-assets.js";

/**
 * The console's Content-Security-Policy: its own scripts, styles and images only, calls to this
 * origin only (the RPCs), no inline code, no plugins, no framing, no forms posting anywhere, and
 * Trusted Types required so no script can write HTML from a string.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

/** Headers on every answer under /console, files and refusals alike. */
export const CONSOLE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONSOLE_CSP,
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
};

const SECURITY_HEADER_ENTRIES = Object.entries(CONSOLE_SECURITY_HEADERS);

/** What the route says when the console was never built. */
export const CONSOLE_NOT_BUILT =
  "The admin console is not built. Run `npm run build` (it writes packages/console/dist) and restart the " +
  "token-service, or set LATCHKEY_CONSOLE_ENABLED=false to turn this route off.\n";

/** The admin console's static files on the Connect listener. */
export interface ConsoleRoute {
  /** Answers a request under `/console` and returns true; returns false for any other path. */
  handle(req: IncomingMessage | Http2ServerRequest, res: NodeResponse): boolean;
}

/**
 * Serves the fixed set of files read at start-up (see `loadConsoleAssets`) under `/console/`:
 * GET and HEAD only (anything else is 405 with `Allow`), an exact path match or 404, gzip when the
 * client takes it, `If-None-Match` revalidation, and the security headers on every answer. Data is
 * never rendered here: the app calls the same RPCs as `buf curl`, with the admin key it is given.
 *
 * @example
 * ```ts
 * const console = createConsoleRoute(loadConsoleAssets(defaultConsoleDir()));
 * if (!console.handle(req, res)) connectHandler(req, res);
 * ```
 */
export function createConsoleRoute(assets: ConsoleAssets): ConsoleRoute {
  const plain = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };
  return {
    handle(req, res) {
      const url = req.url ?? "";
      const query = url.indexOf("?");
      const path = query === -1 ? url : url.slice(0, query);
      if (path !== CONSOLE_PATH && !path.startsWith(`${CONSOLE_PATH}/`)) return false;
      for (const [name, value] of SECURITY_HEADER_ENTRIES) res.setHeader(name, value);
      if (req.method !== "GET" && req.method !== "HEAD") {
        answer(
          res,
          405,
          { ...plain, allow: "GET, HEAD" },
          "The console's files are read-only: GET or HEAD.\n",
        );
        return true;
      }
      if (assets.size === 0) {
        answer(res, 503, plain, CONSOLE_NOT_BUILT);
        return true;
      }
      if (path === CONSOLE_PATH) {
        answer(res, 308, { ...plain, location: `${CONSOLE_PATH}/` });
        return true;
      }
      const asset = assets.get(path);
      if (asset === undefined) {
        answer(res, 404, plain, "No such file in the console.\n");
        return true;
      }
      const headers = {
        "content-type": asset.contentType,
        "cache-control": asset.cacheControl,
        etag: asset.etag,
        vary: "Accept-Encoding",
      };
      if (matchesIfNoneMatch(req.headers["if-none-match"], asset.etag)) {
        answer(res, 304, headers);
        return true;
      }
      const gzip = asset.gzip !== undefined && acceptsGzip(req.headers["accept-encoding"]);
      const body = gzip ? (asset.gzip as Buffer) : asset.body;
      // Both writeHead()s take (status, headers); TypeScript cannot call a union of overloads.
      const node = res as ServerResponse;
      node.writeHead(200, {
        ...headers,
        ...(gzip ? { "content-encoding": "gzip" } : {}),
        "content-length": String(body.length),
      });
      node.end(req.method === "HEAD" ? undefined : body);
      return true;
    },
  };
}

/**
 * Whether `If-None-Match` names `etag` (RFC 9110 §13.1.2): `*`, or a list holding it, compared weakly,
 * so `W/"…"` matches too (a proxy that gzips, nginx among them, weakens the validator it passes on).
 */
export function matchesIfNoneMatch(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const list = Array.isArray(header) ? header.join(",") : header;
  if (list.trim() === "*") return true;
  return list.split(",").some((entry) => entry.trim().replace(/^W\//, "") === etag);
}

/** Whether `Accept-Encoding` takes gzip: `gzip` or `*` listed without `q=0`. */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  const entries = (Array.isArray(header) ? header.join(",") : (header ?? "")).toLowerCase().split(",");
  let star = false;
  for (const entry of entries) {
    const [coding = "", ...params] = entry.split(";").map((part) => part.trim());
    const refused = params.some((param) => /^q=0(\.0{0,3})?$/.test(param));
    if (coding === "gzip") return !refused;
    if (coding === "*") star = !refused;
  }
  return star;
}
