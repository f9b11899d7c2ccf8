// CORS on the Connect port: allowed origins come from config (none by default); preflights are
// answered by the listener and never reach a handler; a disallowed origin gets no CORS header.
import { cors } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenServiceConfig } from "../../services/token-service/src/config.js";
import { createConnectServer } from "../../services/token-service/src/server/connect/connect-server.js";
import type { RunningServer } from "../../services/token-service/src/server/shared/running-server.js";
import { captureLogger, createTestTeams } from "../../services/token-service/test-support/test-servers.js";

const ALLOWED = "https://console.example.com";
const OTHER = "https://evil.example.net";
const LIST_TEAMS = "/latchkey.v1.TeamService/ListTeams";

let server: RunningServer;
let baseUrl: string;
const { logger, lines } = captureLogger();
beforeAll(async () => {
  const config = loadTokenServiceConfig({
    LATCHKEY_CORS_ALLOWED_ORIGINS: `${ALLOWED}, http://127.0.0.1:5173`,
    LATCHKEY_CORS_MAX_AGE_S: "600",
  });
  server = await createConnectServer({
    services: [createTestTeams()],
    listen: { host: "127.0.0.1", port: 0 },
    logger,
    cors: { allowedOrigins: config.corsAllowedOrigins ?? [], maxAgeS: config.corsMaxAgeS },
  });
  baseUrl = `http://127.0.0.1:${server.port}`;
});
afterAll(() => server?.close(1_000));

function preflight(origin: string | undefined) {
  return fetch(`${baseUrl}${LIST_TEAMS}`, {
    method: "OPTIONS",
    headers: {
      ...(origin === undefined ? {} : { origin }),
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,connect-protocol-version,authorization",
    },
  });
}

function call(origin: string) {
  return fetch(`${baseUrl}${LIST_TEAMS}`, {
    method: "POST",
    headers: { origin, "content-type": "application/json", "connect-protocol-version": "1" },
    body: "{}",
  });
}

const corsHeaders = (response: Response) =>
  [...response.headers.keys()].filter((name) => name.startsWith("access-control-"));
const handledCalls = () => lines.filter((line) => line.msg === "rpc").length;

describe("CORS on the Connect port", () => {
  it("answers a preflight from an allowed origin with connect's methods and headers, without a handler", async () => {
    const before = handledCalls();
    const response = await preflight(ALLOWED);
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect(response.headers.get("access-control-allow-methods")).toBe(cors.allowedMethods.join(", "));
    const allowedHeaders = response.headers.get("access-control-allow-headers")?.split(", ") ?? [];
    expect(allowedHeaders).toEqual(expect.arrayContaining([...cors.allowedHeaders, "Authorization"]));
    expect(response.headers.get("access-control-max-age")).toBe("600");
    expect(response.headers.get("vary")).toBe("Origin");
    expect(handledCalls()).toBe(before);
  });

  it("lets an allowed origin read the answer and connect's exposed headers", async () => {
    const before = handledCalls();
    const response = await call(ALLOWED);
    expect(response.status).toBe(200);
    // The count the preflight tests rely on moves for a call that reaches the handler.
    expect(handledCalls()).toBe(before + 1);
    expect(response.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    const exposed = response.headers.get("access-control-expose-headers")?.split(", ") ?? [];
    expect(exposed).toEqual(expect.arrayContaining([...cors.exposedHeaders, "x-request-id"]));
  });

  it("refuses a disallowed origin's preflight with a 403 and no CORS header, without a handler", async () => {
    const before = handledCalls();
    for (const origin of [OTHER, `${ALLOWED}.evil.net`, "null", undefined]) {
      const response = await preflight(origin);
      expect(response.status, String(origin)).toBe(403);
      expect(corsHeaders(response), String(origin)).toEqual([]);
    }
    expect(handledCalls()).toBe(before);
  });

  it("gives a disallowed origin's request no CORS header, so its page cannot read the answer", async () => {
    for (const origin of [OTHER, "http://console.example.com", "null"]) {
      const response = await call(origin);
      expect(response.status, origin).toBe(200);
      expect(corsHeaders(response), origin).toEqual([]);
    }
  });
});

describe("the CORS settings", () => {
  it("allow no origin by default", () => {
    expect(loadTokenServiceConfig({}).corsAllowedOrigins).toBeUndefined();
  });

  it.each([
    ["*", "*"],
    ["a path", "https://console.example.com/admin"],
    ["a trailing slash", "https://console.example.com/"],
    ["an upper-case host", "https://Console.example.com"],
    ["another scheme", "ftp://console.example.com"],
    ["not a URL", "console.example.com"],
  ])("refuse %s, naming the variable", (_name, value) => {
    expect(() => loadTokenServiceConfig({ LATCHKEY_CORS_ALLOWED_ORIGINS: `${ALLOWED},${value}` })).toThrow(
      /LATCHKEY_CORS_ALLOWED_ORIGINS/,
    );
  });
});
