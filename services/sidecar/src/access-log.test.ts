import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ACCESS_LOG_CHUNK,
  ACCESS_LOG_MAX_DELAY_MS,
  type AccessLogEntry,
  bufferedStdout,
  createAccessLog,
  createSidecarLogger,
} from "./access-log.js";

const ENTRY: AccessLogEntry = {
  requestId: "r-1",
  method: "GET",
  path: "/",
  status: 200,
  decision: "public",
  keyId: undefined,
  teamId: undefined,
  durationMs: 1,
};

afterEach(() => {
  vi.useRealTimers();
});

describe("sidecar logger and access log", () => {
  it("builds its default stdout destination (its buffer sizes are ones sonic-boom accepts)", () => {
    const destination = bufferedStdout();
    expect(typeof destination.write).toBe("function");
  });

  it("writes one JSON line per request, in pino's shape, handed over in one chunk", () => {
    const chunks: string[] = [];
    const logger = createSidecarLogger("info", { write: (chunk: string) => chunks.push(chunk) });
    const log = createAccessLog(logger);
    const entry = {
      requestId: 'id-"1',
      method: "GET",
      path: "/a\\b",
      status: 200,
      decision: "key" as const,
      keyId: "key_1",
      teamId: "team_1",
      durationMs: 0.25,
      via: undefined,
      wouldRefuse: undefined,
    };
    log(entry);
    log({
      ...entry,
      status: 403,
      keyId: undefined,
      teamId: undefined,
      via: "forward-auth",
      wouldRefuse: 403,
    });
    expect(chunks).toEqual([]);
    log.flush();
    expect(chunks).toHaveLength(1);
    const lines = (chunks[0] ?? "")
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      level: 30,
      service: "latchkey-sidecar",
      requestId: 'id-"1',
      path: "/a\\b",
      status: 200,
      decision: "key",
      keyId: "key_1",
      teamId: "team_1",
      durationMs: 0.25,
      msg: "request",
    });
    expect(lines[1]).toMatchObject({ status: 403, via: "forward-auth", wouldRefuse: 403 });
    expect(lines[1]).not.toHaveProperty("keyId");
  });

  it("writes buffered lines after at most ACCESS_LOG_MAX_DELAY_MS", () => {
    vi.useFakeTimers();
    const chunks: string[] = [];
    const log = createAccessLog(
      createSidecarLogger("info", { write: (chunk: string) => chunks.push(chunk) }),
    );
    log(ENTRY);
    vi.advanceTimersByTime(ACCESS_LOG_MAX_DELAY_MS - 1);
    expect(chunks).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(chunks).toHaveLength(1);
    log.flush();
    expect(chunks).toHaveLength(1);
  });

  it("writes at once when ACCESS_LOG_CHUNK characters are buffered", () => {
    vi.useFakeTimers();
    const chunks: string[] = [];
    const log = createAccessLog(
      createSidecarLogger("info", { write: (chunk: string) => chunks.push(chunk) }),
    );
    let lines = 0;
    while (chunks.length === 0) {
      log(ENTRY);
      lines += 1;
    }
    expect(chunks[0]?.length).toBeGreaterThanOrEqual(ACCESS_LOG_CHUNK);
    expect(chunks[0]?.trimEnd().split("\n")).toHaveLength(lines);
  });

  it("writes nothing when info is off", () => {
    const chunks: string[] = [];
    const log = createAccessLog(
      createSidecarLogger("warn", { write: (chunk: string) => chunks.push(chunk) }),
    );
    log(ENTRY);
    log.flush();
    expect(chunks).toEqual([]);
  });
});
