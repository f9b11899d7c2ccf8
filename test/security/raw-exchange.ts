import { connect } from "node:net";

/** One request to write on the socket, as bytes, and whether it is a HEAD (no response body). */
export interface RawRequest {
  readonly bytes: Buffer;
  readonly head: boolean;
}

/** What came back for one request. */
export interface RawAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Outcome of {@link exchangeRaw}: the answers read, and why the exchange ended. */
export interface RawExchange {
  readonly answers: readonly RawAnswer[];
  /** `done`: every request answered; `closed`: the server closed first; `timeout`: it went quiet. */
  readonly ended: "done" | "closed" | "timeout";
}

/**
 * Writes requests one after another on one TCP connection, each once the previous answer is
 * complete (Content-Length, chunked, or no body), and returns what came back. Raw bytes, so
 * methods, targets and header names go out exactly as written: no client library normalizes
 * them. Never throws for what the server does; only for a connection that cannot be opened.
 */
export function exchangeRaw(
  port: number,
  requests: readonly RawRequest[],
  timeoutMs = 5_000,
): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const answers: RawAnswer[] = [];
    let buffer = Buffer.alloc(0);
    let settled = false;
    let connected = false;
    const socket = connect(port, "127.0.0.1");
    const finish = (ended: RawExchange["ended"]) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ answers, ended });
    };
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    const writeNext = () => {
      const next = requests[answers.length];
      if (next === undefined) finish("done");
      else socket.write(next.bytes);
    };
    socket.once("connect", () => {
      connected = true;
      writeNext();
    });
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const request = requests[answers.length];
        if (request === undefined) return;
        const parsed = parseAnswer(buffer, request.head);
        if (parsed === undefined) return;
        buffer = buffer.subarray(parsed.length);
        const { status } = parsed.answer;
        // An interim answer (100 Continue) is followed by the real one to the same request.
        if (status >= 100 && status < 200 && status !== 101) continue;
        answers.push(parsed.answer);
        if (answers.length === requests.length) {
          finish("done");
          return;
        }
        writeNext();
      }
    });
    socket.on("error", (error) => {
      if (!connected && !settled) {
        settled = true;
        clearTimeout(timer);
        reject(error);
      } else finish("closed");
    });
    socket.on("close", () => {
      // An answer without Content-Length or chunking ends with the connection.
      const end = buffer.indexOf("\r\n\r\n");
      if (!settled && end !== -1 && answers.length < requests.length) {
        const parsed = parseHead(buffer.subarray(0, end));
        answers.push({ ...parsed, body: buffer.subarray(end + 4).toString("utf8") });
      }
      finish("closed");
    });
  });
}

function parseAnswer(buffer: Buffer, head: boolean): { answer: RawAnswer; length: number } | undefined {
  const end = buffer.indexOf("\r\n\r\n");
  if (end === -1) return undefined;
  const { status, headers } = parseHead(buffer.subarray(0, end));
  const bodyStart = end + 4;
  if (head || status === 101 || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { answer: { status, headers, body: "" }, length: bodyStart };
  }
  const contentLength = headers["content-length"];
  if (contentLength !== undefined) {
    const total = bodyStart + Number(contentLength);
    if (buffer.length < total) return undefined;
    return {
      answer: { status, headers, body: buffer.subarray(bodyStart, total).toString("utf8") },
      length: total,
    };
  }
  if (headers["transfer-encoding"]?.toLowerCase().includes("chunked")) {
    const terminator = buffer.indexOf("\r\n0\r\n\r\n", bodyStart - 2);
    if (terminator === -1) return undefined;
    const total = terminator + 7;
    return {
      answer: { status, headers, body: buffer.subarray(bodyStart, total).toString("utf8") },
      length: total,
    };
  }
  // Neither: the body runs to the end of the connection; what has arrived is the answer.
  return undefined;
}

function parseHead(head: Buffer): { status: number; headers: Record<string, string> } {
  const lines = head.toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(lines[0] ?? "")?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers };
}
