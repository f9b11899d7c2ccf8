import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { bufferedStdout, createAccessLog, createSidecarLogger } from "./access-log.js";

describe("sidecar logger and access log", () => {
  it("builds its default stdout destination (its buffer sizes are ones sonic-boom accepts)", () => {
    const destination = bufferedStdout();
    expect(typeof destination.write).toBe("function");
  });

  it("writes one JSON line per request, in pino's shape, batched per event-loop turn", async () => {
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
    await nextTurn();
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

  it("writes nothing when info is off", async () => {
    const chunks: string[] = [];
    const log = createAccessLog(
      createSidecarLogger("warn", { write: (chunk: string) => chunks.push(chunk) }),
    );
    log({
      requestId: "r",
      method: "GET",
      path: "/",
      status: 200,
      decision: "public",
      keyId: undefined,
      teamId: undefined,
      durationMs: 1,
    });
    await nextTurn();
    expect(chunks).toEqual([]);
  });
});
