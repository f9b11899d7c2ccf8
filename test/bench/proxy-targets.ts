import { createServer } from "node:http";
import { Pool } from "undici";

// The processes behind bench:sidecar and bench:sidecar-cost, each run as its own process:
//   proxy-targets.ts --upstream PORT              the app: a fixed small JSON answer
//   proxy-targets.ts --bare-proxy PORT UPSTREAM   the yardstick: node:http + an undici Pool, no auth

const role = process.argv[2];
if (role === "--upstream") runUpstream(Number(process.argv[3]));
else if (role === "--bare-proxy") runBareProxy(Number(process.argv[3]), Number(process.argv[4]));
else throw new Error("usage: proxy-targets.ts --upstream PORT | --bare-proxy PORT UPSTREAM_PORT");
// Exit (rather than die of the signal) so that --cpu-prof and valgrind write their output.
process.once("SIGTERM", () => process.exit(0));

/** The app behind every target: a fixed small JSON answer. */
function runUpstream(port: number): void {
  const body = JSON.stringify({ ok: true, message: "hello from the upstream" });
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  server.listen(port, "127.0.0.1", () => process.stdout.write("listening\n"));
}

/** The yardstick: the smallest reasonable Node proxy, node:http in front of an undici keep-alive pool. */
function runBareProxy(port: number, upstreamPort: number): void {
  const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 128, pipelining: 1 });
  // RFC 9110 §7.6.1's hop-by-hop headers, written out here so the yardstick shares no code with the sidecar.
  const hopByHop = "connection keep-alive transfer-encoding te trailer upgrade proxy-connection".split(" ");
  const server = createServer((req, res) => {
    const headers = { ...req.headers };
    for (const name of hopByHop) delete headers[name];
    pool
      .stream(
        {
          path: req.url ?? "/",
          method: (req.method ?? "GET") as "GET",
          headers,
          body: req.method === "GET" || req.method === "HEAD" ? null : req,
        },
        ({ statusCode, headers: responseHeaders }) => {
          for (const name of hopByHop) delete responseHeaders[name];
          res.writeHead(statusCode, responseHeaders as Record<string, string | string[]>);
          return res;
        },
      )
      .catch(() => {
        if (!res.headersSent) res.statusCode = 502;
        res.end();
      });
  });
  server.listen(port, "127.0.0.1", () => process.stdout.write("listening\n"));
}
