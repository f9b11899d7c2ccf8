import { randomBytes } from "node:crypto";

/** WebSocket close code for "policy violation" (RFC 6455 §7.4.1): the key was revoked. */
export const CLOSE_POLICY_VIOLATION = 1008;
/** WebSocket close code for "going away": the sidecar is shutting down. */
export const CLOSE_GOING_AWAY = 1001;

/**
 * Encodes a close frame (RFC 6455 §5.5.1): FIN + opcode 0x8, a two-byte code
 * and a short UTF-8 reason. Frames to a client are unmasked; frames to a server
 * must be masked. Written by hand because it is ten lines and the sidecar never
 * otherwise parses WebSocket traffic (no `ws` dependency for one frame).
 *
 * @example
 * ```ts
 * socket.write(encodeCloseFrame(1008, "key revoked"));
 * ```
 */
export function encodeCloseFrame(code: number, reason: string, options: { masked?: boolean } = {}): Buffer {
  const reasonBytes = Buffer.from(reason, "utf8").subarray(0, 123);
  const payload = Buffer.alloc(2 + reasonBytes.length);
  payload.writeUInt16BE(code, 0);
  reasonBytes.copy(payload, 2);
  if (!options.masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  const mask = randomBytes(4);
  for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i % 4] as number);
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload]);
}

/**
 * Follows frame boundaries in one direction of a WebSocket byte stream without
 * buffering payloads, so the sidecar can inject a close frame between two
 * frames instead of into the middle of one.
 */
export class FrameBoundaryTracker {
  /** Payload bytes of the current frame still to come. */
  #remaining = 0;
  /** A frame header split across chunks. */
  #header: Buffer | undefined;

  /** True between frames. */
  get atBoundary(): boolean {
    return this.#remaining === 0 && this.#header === undefined;
  }

  /**
   * Consumes `chunk` and returns how many of its bytes were consumed: all of
   * them, or with `stopAtBoundary` only up to the first frame boundary (0 when
   * already at one).
   */
  advance(chunk: Buffer, stopAtBoundary = false): number {
    let offset = 0;
    while (offset < chunk.length) {
      if (stopAtBoundary && this.atBoundary) return offset;
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - offset);
        this.#remaining -= take;
        offset += take;
        continue;
      }
      const pending = this.#header;
      const available =
        pending === undefined ? chunk.subarray(offset) : Buffer.concat([pending, chunk.subarray(offset)]);
      const headerLength = frameHeaderLength(available);
      if (headerLength === undefined || available.length < headerLength) {
        this.#header = Buffer.from(available);
        return chunk.length;
      }
      const length7 = (available[1] as number) & 0x7f;
      const payloadLength =
        length7 === 126
          ? available.readUInt16BE(2)
          : length7 === 127
            ? Number(available.readBigUInt64BE(2))
            : length7;
      offset += headerLength - (pending?.length ?? 0);
      this.#header = undefined;
      this.#remaining = payloadLength;
    }
    return offset;
  }
}

function frameHeaderLength(bytes: Buffer): number | undefined {
  if (bytes.length < 2) return undefined;
  const second = bytes[1] as number;
  const length7 = second & 0x7f;
  const extended = length7 === 126 ? 2 : length7 === 127 ? 8 : 0;
  return 2 + extended + (second & 0x80 ? 4 : 0);
}
