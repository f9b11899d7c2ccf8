// The README's plain-curl walkthrough against the real token-service: JSON over HTTP/1.1 (curl's
// default for http://) and h2c on the same Connect port, with the Connect protocol's unary shape.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

const run = promisify(execFile);

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(() => service?.close());

/** `curl -sS [flags] -H 'content-type: application/json' -d body URL`, as the README types it. */
async function curl(procedure: string, body: object, flags: string[] = []) {
  const { stdout } = await run(
    "curl",
    [
      "-sS",
      ...flags,
      "-H",
      "content-type: application/json",
      "-d",
      JSON.stringify(body),
      "-w",
      "\n%{http_code} %{http_version}",
      `${service.connectUrl}/latchkey.v1.${procedure}`,
    ],
    { timeout: 10_000 },
  );
  const cut = stdout.lastIndexOf("\n");
  const [status, version] = stdout.slice(cut + 1).split(" ");
  return {
    status: Number(status),
    version,
    json: JSON.parse(stdout.slice(0, cut)) as Record<string, unknown>,
  };
}

const asRoot = ["-H", `Authorization: Bearer ${ROOT_KEY}`];

describe("plain curl with JSON on the Connect port", () => {
  it("creates a team, issues a key and verifies it over HTTP/1.1, and over h2c on the same port", async () => {
    const created = await curl("TeamService/CreateTeam", { name: "payments" }, asRoot);
    expect(created).toMatchObject({ status: 200, version: "1.1", json: { team: { name: "payments" } } });
    const teamId = (created.json.team as { id: string }).id;
    const issued = await curl(
      "TokenService/Issue",
      { teamId, name: "prod-worker", scopes: ["write"], environment: "live" },
      asRoot,
    );
    expect(issued.status).toBe(200);
    const token = issued.json.token as string;

    for (const flags of [[], ["--http1.1"], ["--http2-prior-knowledge"]]) {
      const verified = await curl("TokenService/Verify", { token, requiredScopes: ["read"] }, flags);
      expect(verified.json, flags.join(" ")).toMatchObject({
        result: "VERIFY_RESULT_VALID",
        key: { name: "prod-worker", teamId },
      });
      expect(verified.version).toBe(flags[0] === "--http2-prior-knowledge" ? "2" : "1.1");
    }
  });

  it("answers an error as an HTTP status with {code, message}", async () => {
    const refused = await curl("TeamService/CreateTeam", { name: "payments" });
    expect(refused.status).toBe(401);
    expect(refused.json).toEqual({ code: "unauthenticated", message: expect.any(String) });
  });
});
