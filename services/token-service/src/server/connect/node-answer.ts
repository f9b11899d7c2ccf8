import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";

/** A response from either node server the Connect listener runs. */
export type NodeResponse = ServerResponse | Http2ServerResponse;

/**
 * Ends `res` with `status`, `headers` and an optional plain-text body: for the
 * answers the listener gives itself, before connect sees a request.
 */
export function answer(res: NodeResponse, status: number, headers: OutgoingHttpHeaders, body?: string): void {
  // Both writeHead()s take (status, headers); TypeScript cannot call a union of overloads.
  const node = res as ServerResponse;
  node.writeHead(status, headers);
  body === undefined ? node.end() : node.end(body);
}
