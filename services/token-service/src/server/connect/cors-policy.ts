import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { cors } from "@connectrpc/connect";
import { REQUEST_ID_HEADER } from "../shared/request-id.js";
import { answer, type NodeResponse } from "./node-answer.js";

/** What an OPTIONS request that is not an allowed preflight is told. */
export const PREFLIGHT_REFUSED =
  "OPTIONS is only for CORS preflights from an allowed origin (LATCHKEY_CORS_ALLOWED_ORIGINS)\n";

/** Options of {@link createCorsPolicy}. */
export interface CorsOptions {
  /** Exact origins (`https://console.example.com`) whose pages may call; none by default. */
  readonly allowedOrigins: readonly string[];
  /** How long a browser may cache a preflight's answer, in seconds. */
  readonly maxAgeS: number;
}

/** Cross-origin handling of the Connect listener. */
export interface CorsPolicy {
  /**
   * Adds CORS response headers when the request's `Origin` is allowed, and
   * answers every `OPTIONS` request itself (connect has no OPTIONS route, so
   * a preflight must never reach it). Returns true when it answered.
   */
  handle(req: IncomingMessage | Http2ServerRequest, res: NodeResponse): boolean;
}

/**
 * CORS for browser clients (`@connectrpc/connect-web`): connect's own lists of
 * methods, request headers and exposed headers, plus `Authorization` (admin
 * calls) and `X-Request-Id`. An origin not in the list gets no CORS header at
 * all, so the browser keeps the response from its page; its preflight gets a
 * 403. Written here rather than taken from a CORS package: it is a dozen lines
 * over connect's constants, and a generic package would want the same lists.
 *
 * @example
 * ```ts
 * const policy = createCorsPolicy({ allowedOrigins: ["https://console.example.com"], maxAgeS: 7200 });
 * if (!policy.handle(req, res)) connectHandler(req, res);
 * ```
 */
export function createCorsPolicy(options: CorsOptions): CorsPolicy {
  const allowed = new Set(options.allowedOrigins);
  const allowMethods = cors.allowedMethods.join(", ");
  const allowHeaders = [...cors.allowedHeaders, "Authorization", REQUEST_ID_HEADER].join(", ");
  const exposeHeaders = [...cors.exposedHeaders, REQUEST_ID_HEADER].join(", ");
  const maxAge = String(options.maxAgeS);
  return {
    handle(req, res) {
      const origin = req.headers.origin;
      const permitted = typeof origin === "string" && allowed.has(origin);
      // Whatever the answer, it depends on Origin: caches must not hand one origin's answer to another.
      res.setHeader("vary", "Origin");
      if (req.method === "OPTIONS") {
        if (permitted && typeof req.headers["access-control-request-method"] === "string") {
          answer(res, 204, {
            "access-control-allow-origin": origin,
            "access-control-allow-methods": allowMethods,
            "access-control-allow-headers": allowHeaders,
            "access-control-max-age": maxAge,
          });
        } else {
          answer(res, 403, { "content-type": "text/plain; charset=utf-8" }, PREFLIGHT_REFUSED);
        }
        return true;
      }
      if (permitted) {
        res.setHeader("access-control-allow-origin", origin);
        res.setHeader("access-control-expose-headers", exposeHeaders);
      }
      return false;
    },
  };
}
