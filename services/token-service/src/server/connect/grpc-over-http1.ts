import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { answer, type NodeResponse } from "./node-answer.js";

// application/grpc, application/grpc+proto, application/grpc+json; not application/grpc-web.
const GRPC_CONTENT_TYPE = /^application\/grpc(?:\+[a-z0-9._-]+)?\s*(?:;|$)/i;

/** What a gRPC request over HTTP/1.x is told. */
export const GRPC_NEEDS_HTTP2 =
  "gRPC needs HTTP/2: call this port with HTTP/2 (h2c prior knowledge, or TLS with ALPN h2), " +
  "or use the Connect or gRPC-Web protocol, which work over HTTP/1.1\n";

/**
 * Answers a gRPC request that arrived over HTTP/1.x with `505 HTTP Version Not
 * Supported` and a message saying what works, instead of handing it to
 * connect (gRPC's trailers do not fit HTTP/1.1 as clients and proxies use it).
 * Returns true when it answered.
 *
 * @example
 * ```ts
 * if (!refuseGrpcOverHttp1(req, res)) connectHandler(req, res);
 * ```
 */
export function refuseGrpcOverHttp1(req: IncomingMessage | Http2ServerRequest, res: NodeResponse): boolean {
  const contentType = req.headers["content-type"];
  if (req.httpVersionMajor >= 2 || contentType === undefined || !GRPC_CONTENT_TYPE.test(contentType)) {
    return false;
  }
  answer(res, 505, { "content-type": "text/plain; charset=utf-8", connection: "close" }, GRPC_NEEDS_HTTP2);
  return true;
}
