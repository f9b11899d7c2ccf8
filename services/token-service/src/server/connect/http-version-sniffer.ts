import type { Socket } from "node:net";

/** The bytes every HTTP/2 connection opens with (RFC 9113 §3.4), prior knowledge or not. */
export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * What a cleartext connection speaks, from its first bytes: `bad-preface` is
 * a start of the preface that turns into something else.
 */
export type SniffedVersion = "h2" | "http/1" | "bad-preface";

// No HTTP/1 method starts with PRI (RFC 9113 reserves it for the preface); and Node's HTTP/1
// parser, given `PRI * HTTP/1.1`, waits for an HTTP/2 upgrade until its headers timeout.
const PREFACE_METHOD = HTTP2_PREFACE.subarray(0, 3);

/**
 * Reads the first bytes of a cleartext connection until they tell an HTTP/2
 * preface from anything else, puts them back, and resolves with the answer.
 * Anything that does not start like the preface (an HTTP/1.x request line,
 * or garbage) is `http/1`: Node's HTTP/1 parser is the one that answers
 * garbage with a 400. A connection that closes, fails, or sends nothing decisive within
 * `timeoutMs` is destroyed and resolves `undefined`.
 *
 * The decision needs at most 24 bytes, usually one: a request line cannot
 * start with `PRI * HTTP/2.0`, so the first byte that differs from the
 * preface decides, however the client splits its packets.
 *
 * @example
 * ```ts
 * net.createServer(async (socket) => {
 *   const version = await sniffHttpVersion(socket, 10_000);
 *   if (version !== undefined) (version === "h2" ? h2 : h1).emit("connection", socket);
 * });
 * ```
 */
export function sniffHttpVersion(socket: Socket, timeoutMs: number): Promise<SniffedVersion | undefined> {
  return new Promise((resolve) => {
    let seen: Buffer = Buffer.alloc(0);
    const finish = (version: SniffedVersion | undefined) => {
      clearTimeout(timer);
      socket.off("readable", onReadable);
      socket.off("end", onGone);
      socket.off("close", onGone);
      socket.off("error", onGone);
      if (version === undefined) {
        socket.destroy();
      } else {
        // Back at the head of the stream: the HTTP/1 parser and the HTTP/2
        // session both read what is buffered before reading the socket.
        socket.unshift(seen);
      }
      resolve(version);
    };
    const onReadable = () => {
      for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) {
        seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
        const compared = Math.min(seen.length, HTTP2_PREFACE.length);
        if (!seen.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared))) {
          const startedLikePreface = seen.subarray(0, PREFACE_METHOD.length).equals(PREFACE_METHOD);
          finish(startedLikePreface ? "bad-preface" : "http/1");
          return;
        }
        if (seen.length >= HTTP2_PREFACE.length) {
          finish("h2");
          return;
        }
      }
    };
    const onGone = () => finish(undefined);
    const timer = setTimeout(onGone, timeoutMs);
    socket.on("readable", onReadable);
    socket.once("end", onGone);
    socket.once("close", onGone);
    socket.once("error", onGone);
  });
}
