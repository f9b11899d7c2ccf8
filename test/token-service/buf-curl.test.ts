// The admin walkthrough of the README, as an admin would type it: `buf curl`
// with server reflection and no local schema.
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

const run = promisify(execFile);
const BUF = resolve("node_modules/.bin/buf");

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(() => service?.close());

async function bufCurl(
  protocol: "grpc" | "connect",
  port: number,
  procedure: string,
  body: object,
  bearer?: string,
): Promise<Record<string, unknown>> {
  const args = [
    "curl",
    "--protocol",
    protocol,
    "--http2-prior-knowledge",
    ...(bearer ? ["-H", `Authorization: Bearer ${bearer}`] : []),
    "-d",
    JSON.stringify(body),
    `http://127.0.0.1:${port}/${procedure}`,
  ];
  const { stdout } = await run(BUF, args, { timeout: 20_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

const combos = [
  { protocol: "grpc", listener: "connect" },
  { protocol: "grpc", listener: "grpc" },
  { protocol: "connect", listener: "connect" },
] as const;

describe.concurrent("buf curl with reflection and no --schema", () => {
  it.each(combos)(
    "walks CreateTeam, Issue, Verify, Revoke over --protocol $protocol on the $listener listener",
    async ({ protocol, listener }) => {
      const port = listener === "grpc" ? service.handle.grpcPort : service.handle.port;
      const created = await bufCurl(
        protocol,
        port,
        "latchkey.v1.TeamService/CreateTeam",
        { name: `buf-${protocol}-${listener}` },
        ROOT_KEY,
      );
      const teamId = (created.team as { id: string }).id;
      expect(teamId).toMatch(/^team_/);

      const issued = await bufCurl(
        protocol,
        port,
        "latchkey.v1.TokenService/Issue",
        { teamId, name: "buf-curl", scopes: ["read"] },
        ROOT_KEY,
      );
      const token = issued.token as string;
      const keyId = (issued.key as { id: string }).id;
      expect(token).toMatch(/^lk_live_/);

      const valid = await bufCurl(protocol, port, "latchkey.v1.TokenService/Verify", {
        token,
        requiredScopes: ["read"],
      });
      expect(valid.result).toBe("VERIFY_RESULT_VALID");
      expect((valid.key as { id: string }).id).toBe(keyId);

      const revoked = await bufCurl(
        protocol,
        port,
        "latchkey.v1.TokenService/Revoke",
        { keyId, reason: "done" },
        ROOT_KEY,
      );
      expect((revoked.key as { revokeReason: string }).revokeReason).toBe("done");

      const after = await bufCurl(protocol, port, "latchkey.v1.TokenService/Verify", { token });
      expect(after.result).toBe("VERIFY_RESULT_REVOKED");
    },
  );
});
