import { once } from "node:events";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { AppUpstream, HandlerRun, Routed, StackName } from "./handler-run.js";

/** A stack served by {@link startNodeAppHost}: its name and how it routes a request. */
export interface NodeStack {
  readonly name: StackName;
  route(req: IncomingMessage): Routed | undefined;
}

/**
 * One `node:http` server that runs several routers side by side on every request and records
 * each one's handler run. The stacks share Node's HTTP parser, so one server (and one sidecar
 * and nginx in front of it) stands for all of them; only their routing differs. The answer is
 * 200 when any stack ran a handler, 404 otherwise. A request with `Upgrade` is answered like any
 * other (Node does that when nothing listens for `upgrade`), on a connection kept alive.
 */
export async function startNodeAppHost(options: { stacks: readonly NodeStack[] }): Promise<AppUpstream> {
  let runs: HandlerRun[] = [];
  const server = createServer((req, res) => {
    // The body is read to its end so the connection stays usable for the next request.
    req.resume();
    req.once("end", () => {
      const caseId = req.headers["x-case-id"];
      const identityHeaders: Array<readonly [string, string]> = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = (req.rawHeaders[i] as string).toLowerCase();
        if (name.startsWith("x-latchkey-")) identityHeaders.push([name, req.rawHeaders[i + 1] as string]);
      }
      const url = req.url ?? "/";
      const query = url.indexOf("?");
      const queryTokens = query === -1 ? [] : new URLSearchParams(url.slice(query + 1)).getAll("token");
      const ran: string[] = [];
      for (const stack of options.stacks) {
        const routed = stack.route(req);
        if (routed === undefined) continue;
        ran.push(`${stack.name}:${routed.handler}`);
        runs.push({
          stack: stack.name,
          caseId: typeof caseId === "string" ? caseId : undefined,
          handler: routed.handler,
          method: routed.method,
          routedPath: routed.path,
          identityHeaders,
          queryTokens,
        });
      }
      const body = JSON.stringify({ ran });
      res.writeHead(ran.length > 0 ? 200 : 404, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
    });
  });
  // Node answers an unparsable request (an unknown method) with 400 only on a fresh connection and
  // drops a reused one without a word, which leaves nginx's keep-alive upstream waiting: answer on
  // every connection, as the sidecar does.
  server.on("clientError", (_error, socket) => {
    if (socket.writable)
      socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    name: "node",
    stacks: options.stacks.map((stack) => stack.name),
    port: (server.address() as AddressInfo).port,
    async drain() {
      const drained = runs;
      runs = [];
      return drained;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
