import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { pathToFileURL } from "node:url";

/** A running demo app. */
export interface DemoApp {
  readonly port: number;
  readonly server: Server;
  /** How many requests (upgrades included) reached it: tests check that a refused one never did. */
  handled(): number;
  close(): Promise<void>;
}

const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * A small upstream to put the sidecar in front of (for `npm start` and tests):
 * - any path: JSON `{ method, path, headers, bodyBytes }` of the request it got;
 * - `GET /events`: server-sent events, `data: {"tick":n}` every `?interval=` ms (default 1000);
 * - `GET /ws`: a WebSocket that first sends `{"type":"hello","path","headers"}`, then echoes.
 *
 * @example
 * ```ts
 * const app = await startDemoApp({ port: 3000 });
 * ```
 */
export async function startDemoApp(options: { port?: number; host?: string } = {}): Promise<DemoApp> {
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  let handled = 0;
  const server = createServer((req, res) => {
    handled++;
    const url = new URL(req.url ?? "/", "http://demo");
    if (url.pathname === "/events") {
      const interval = Math.max(10, Number(url.searchParams.get("interval") ?? 1000) || 1000);
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      let tick = 0;
      const send = () => res.write(`id: ${tick}\ndata: ${JSON.stringify({ tick: tick++ })}\n\n`);
      send();
      const timer = setInterval(send, interval);
      timers.add(timer);
      res.on("close", () => {
        clearInterval(timer);
        timers.delete(timer);
      });
      return;
    }
    let bodyBytes = 0;
    req.on("data", (chunk: Buffer) => {
      bodyBytes += chunk.length;
    });
    // `?status=503` answers with that status (200–599), for tests of what a front does with app errors.
    const asked = Number(url.searchParams.get("status"));
    const status = Number.isInteger(asked) && asked >= 200 && asked <= 599 ? asked : 200;
    req.on("end", () => {
      const body = JSON.stringify({ method: req.method, path: req.url, headers: req.headers, bodyBytes });
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
    });
  });
  server.on("upgrade", (req: IncomingMessage, socket: Socket) => {
    handled++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    const key = req.headers["sec-websocket-key"];
    if (!(req.url ?? "").startsWith("/ws") || typeof key !== "string") {
      socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      return;
    }
    const accept = createHash("sha1")
      .update(key + WEBSOCKET_GUID)
      .digest("base64");
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`,
    );
    socket.write(
      encodeFrame(0x1, Buffer.from(JSON.stringify({ type: "hello", path: req.url, headers: req.headers }))),
    );
    echoFrames(socket);
  });
  server.listen(options.port ?? 3000, options.host ?? "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    server,
    handled: () => handled,
    close: async () => {
      for (const timer of timers) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Unmasked frame from the server: FIN, the opcode, the payload. */
function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const header =
    length < 126
      ? Buffer.from([0x80 | opcode, length])
      : length < 65536
        ? Buffer.from([0x80 | opcode, 126, length >> 8, length & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), bigEndian64(length)]);
  return Buffer.concat([header, payload]);
}

function bigEndian64(value: number): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(BigInt(value));
  return buffer;
}

/** Reads masked client frames and echoes data frames, answers pings, returns close frames. */
function echoFrames(socket: Socket): void {
  let buffered = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      if (buffered.length < 2) return;
      const opcode = (buffered[0] as number) & 0x0f;
      const masked = ((buffered[1] as number) & 0x80) !== 0;
      let length = (buffered[1] as number) & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        length = Number(buffered.readBigUInt64BE(2));
        offset = 10;
      }
      const mask = masked ? buffered.subarray(offset, offset + 4) : undefined;
      if (masked) offset += 4;
      if (buffered.length < offset + length) return;
      const payload = Buffer.from(buffered.subarray(offset, offset + length));
      if (mask !== undefined)
        for (let i = 0; i < payload.length; i++)
          payload[i] = (payload[i] as number) ^ (mask[i % 4] as number);
      buffered = buffered.subarray(offset + length);
      if (opcode === 0x8) {
        socket.end(encodeFrame(0x8, payload.subarray(0, 2)));
        return;
      }
      if (opcode === 0x9) socket.write(encodeFrame(0xa, payload));
      else if (opcode === 0x1 || opcode === 0x2) socket.write(encodeFrame(opcode, payload));
    }
  });
}

// `node --conditions=@latchkey/source --import tsx services/sidecar/demo/demo-app.ts` runs it on DEMO_PORT (default 3000).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const app = await startDemoApp({
    port: Number(process.env.DEMO_PORT ?? 3000),
    host: process.env.DEMO_HOST,
  });
  process.stdout.write(`demo app listening on http://127.0.0.1:${app.port}\n`);
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => void app.close());
}
