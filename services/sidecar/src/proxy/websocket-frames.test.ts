import { describe, expect, it } from "vitest";
import { encodeCloseFrame, FrameBoundaryTracker } from "./websocket-frames.js";

function frame(payloadLength: number, masked = false): Buffer {
  const header =
    payloadLength < 126
      ? Buffer.from([0x82, (masked ? 0x80 : 0) | payloadLength])
      : payloadLength < 65536
        ? Buffer.from([0x82, (masked ? 0x80 : 0) | 126, payloadLength >> 8, payloadLength & 0xff])
        : Buffer.concat([
            Buffer.from([0x82, (masked ? 0x80 : 0) | 127]),
            (() => {
              const b = Buffer.alloc(8);
              b.writeBigUInt64BE(BigInt(payloadLength));
              return b;
            })(),
          ]);
  return Buffer.concat([
    header,
    masked ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0),
    Buffer.alloc(payloadLength, 7),
  ]);
}

describe("encodeCloseFrame", () => {
  it("encodes code 1008 and the reason, unmasked for clients", () => {
    const bytes = encodeCloseFrame(1008, "key revoked");
    expect(bytes[0]).toBe(0x88);
    expect(bytes[1]).toBe(2 + "key revoked".length);
    expect(bytes.readUInt16BE(2)).toBe(1008);
    expect(bytes.subarray(4).toString()).toBe("key revoked");
  });

  it("masks frames to servers", () => {
    const bytes = encodeCloseFrame(1001, "bye", { masked: true });
    expect(bytes[1]).toBe(0x80 | 5);
    const mask = bytes.subarray(2, 6);
    const payload = Buffer.from(bytes.subarray(6).map((byte, i) => byte ^ (mask[i % 4] as number)));
    expect(payload.readUInt16BE(0)).toBe(1001);
    expect(payload.subarray(2).toString()).toBe("bye");
  });
});

describe("FrameBoundaryTracker", () => {
  it("follows frames of every length form, split at any byte", () => {
    const small = Buffer.concat([frame(5), frame(300), frame(0), frame(10, true)]);
    const large = Buffer.concat([frame(5), frame(70_000), frame(0), frame(10, true)]);
    for (const [stream, step] of [
      [small, 1],
      [small, 3],
      [large, 7],
      [large, 1000],
      [large, large.length],
    ] as const) {
      const tracker = new FrameBoundaryTracker();
      for (let offset = 0; offset < stream.length; offset += step) {
        const chunk = stream.subarray(offset, offset + step);
        expect(tracker.advance(chunk)).toBe(chunk.length);
      }
      expect(tracker.atBoundary).toBe(true);
    }
  });

  it("stops at the end of the current frame when asked", () => {
    const tracker = new FrameBoundaryTracker();
    const first = frame(300);
    const stream = Buffer.concat([first, frame(5)]);
    expect(tracker.advance(stream.subarray(0, 100))).toBe(100);
    expect(tracker.atBoundary).toBe(false);
    expect(tracker.advance(stream.subarray(100), true)).toBe(first.length - 100);
    expect(tracker.atBoundary).toBe(true);
    expect(tracker.advance(stream.subarray(first.length), true)).toBe(0);
  });
});
