// A raw TCP client for the Connect port's protocol tests: sends bytes as the
// test splits them and collects everything the server answers until it closes.
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** What a raw connection saw. */
export interface RawExchange {
  /** Every byte the server sent. */
  readonly received: Buffer;
  /** Whether the server closed the connection (rather than the client giving up). */
  readonly closedByServer: boolean;
}

/** Options of {@link rawExchange}. */
export interface RawExchangeOptions {
  /** Pause between chunks, so each goes out in its own TCP segment. */
  readonly gapMs?: number;
  /** Stop as soon as the answer satisfies this; otherwise wait for the server to close. */
  readonly until?: (received: Buffer) => boolean;
  /** Close the connection after sending, without waiting for an answer. */
  readonly hangUp?: boolean;
  /** Give up (and report `closedByServer: false`) after this long. */
  readonly giveUpMs?: number;
}

/** Connects to `port`, writes `chunks` one by one, and returns what came back. */
export async function rawExchange(
  port: number,
  chunks: readonly (string | Buffer)[],
  options: RawExchangeOptions = {},
): Promise<RawExchange> {
  const socket = net.connect({ host: "127.0.0.1", port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const parts: Buffer[] = [];
  let closedByServer = false;
  const done = new Promise<void>((resolve) => {
    const giveUp = setTimeout(resolve, options.giveUpMs ?? 15_000);
    socket.on("data", (data: Buffer) => {
      parts.push(data);
      if (options.until?.(Buffer.concat(parts))) {
        clearTimeout(giveUp);
        resolve();
      }
    });
    socket.once("close", () => {
      closedByServer = true;
      clearTimeout(giveUp);
      resolve();
    });
  });
  socket.on("error", () => {});
  for (const [i, chunk] of chunks.entries()) {
    if (i > 0 && options.gapMs) await sleep(options.gapMs);
    socket.write(chunk);
  }
  if (options.hangUp) {
    socket.destroy();
    return { received: Buffer.alloc(0), closedByServer: false };
  }
  await done;
  const wasClosed = closedByServer;
  socket.destroy();
  return { received: Buffer.concat(parts), closedByServer: wasClosed };
}

/** The HTTP/2 connection preface, and an empty SETTINGS frame, which is all a client must send first. */
export const H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
export const EMPTY_SETTINGS_FRAME = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

/** Whether `received` starts with an HTTP/2 SETTINGS frame (a server's first frame). */
export function startsWithSettingsFrame(received: Buffer): boolean {
  return received.length >= 9 && received[3] === 4 && received.readUInt32BE(5) === 0;
}

/** Splits `text` into one-byte strings: the slowest client there is. */
export function byteByByte(text: string | Buffer): Buffer[] {
  const bytes = Buffer.from(text);
  return [...bytes].map((byte) => Buffer.from([byte]));
}
