// Plain HTTP for the sidecar tests: node:http with the path exactly as given (fetch and undici
// normalize dot segments away, which is the very thing these tests need to send), raw bytes over
// TCP for what no client library will write, and a reader for server-sent events (shared with the
// sidecar's own tests).
import { connect } from "node:net";

export {
  eventReader,
  type RawResponse as Response,
  send,
} from "../../services/sidecar/src/http-client.fixture.js";

/** Writes `bytes` on a new TCP connection and resolves with everything read until the server closes. */
export function sendRaw(base: string, bytes: Buffer): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      // One response is all these tests want; do not wait for a keep-alive timeout.
      const text = Buffer.concat(chunks).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      const length = /\r\ncontent-length: (\d+)\r\n/i.exec(text);
      if (end !== -1 && length !== null && text.length >= end + 4 + Number(length[1])) socket.end();
    });
    socket.on("end", () => resolve(Buffer.concat(chunks).toString("latin1")));
    // A server that answers before reading everything (a header too large) may reset the connection
    // right after its answer: what arrived is the answer.
    socket.on("error", (error) => {
      if (chunks.length > 0) resolve(Buffer.concat(chunks).toString("latin1"));
      else reject(error);
    });
  });
}
