// The admin walkthrough of the README, as an admin would type it: `buf curl`
// with server reflection and no local schema.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../harness/wait.js";
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

/**
 * The README's `buf curl` lines for the audit log, as an admin copies them: the JSON between
 * `-d "'` and `'"`, with the placeholder ids of the example replaced by real ones.
 */
function readmeAuditBodies(): Record<string, unknown>[] {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const lines = readme.split("\n").filter((line) => line.includes("$API.AuditService/ListAuditEvents"));
  return lines.map((line) => {
    const quoted = /-d "'(.*)'" \$API\.AuditService\/ListAuditEvents/.exec(line)?.[1];
    if (quoted === undefined) throw new Error(`no -d body in README line: ${line}`);
    return JSON.parse(quoted.replaceAll('\\"', '"')) as Record<string, unknown>;
  });
}

describe("the README's ListAuditEvents lines", () => {
  it("run as written with buf curl on both listeners, and find the entries they describe", async () => {
    const bodies = readmeAuditBodies();
    expect(bodies.length).toBeGreaterThanOrEqual(2);
    const created = await bufCurl(
      "grpc",
      service.handle.grpcPort,
      "latchkey.v1.TeamService/CreateTeam",
      { name: "buf-audit" },
      ROOT_KEY,
    );
    const teamId = (created.team as { id: string }).id;
    const issued = await bufCurl(
      "grpc",
      service.handle.grpcPort,
      "latchkey.v1.TokenService/Issue",
      { teamId, name: "audited", scopes: ["admin"] },
      ROOT_KEY,
    );
    const keyId = (issued.key as { id: string }).id;
    await bufCurl(
      "grpc",
      service.handle.grpcPort,
      "latchkey.v1.TokenService/Revoke",
      { keyId, reason: "leaked" },
      ROOT_KEY,
    );
    for (const [protocol, port] of [
      ["grpc", service.handle.grpcPort],
      ["connect", service.handle.port],
    ] as const) {
      const [byTeam = {}] = bodies;
      const page = await bufCurl(
        protocol,
        port,
        "latchkey.v1.AuditService/ListAuditEvents",
        { ...byTeam, teamId },
        ROOT_KEY,
      );
      const events = page.events as Array<{
        action: string;
        keyId?: string;
        details?: Record<string, unknown>;
      }>;
      expect(events.map((event) => event.action)).toEqual(["key.revoke", "key.issue", "team.create"]);
      expect(events[0]?.details).toEqual({ reason: "leaked" });
    }
    // The second line: by actor, since a time; the revoked key is refused, and its refusal is recorded.
    const refused = await run(
      BUF,
      [
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "-H",
        `Authorization: Bearer ${issued.token as string}`,
        "-d",
        "{}",
        `http://127.0.0.1:${service.handle.grpcPort}/latchkey.v1.AuditService/ListAuditEvents`,
      ],
      { timeout: 20_000 },
    ).then(
      () => "",
      (error: { stderr?: string }) => error.stderr ?? "",
    );
    expect(refused).toMatch(/unauthenticated/i);
    const [, byActor = {}] = bodies;
    const since = { ...byActor, actor: keyId, startTime: new Date(Date.now() - 60_000).toISOString() };
    // Refused calls are written a second after they happen.
    const actions = await eventually(
      async () => {
        const page = await bufCurl(
          "grpc",
          service.handle.grpcPort,
          "latchkey.v1.AuditService/ListAuditEvents",
          since,
          ROOT_KEY,
        );
        return ((page.events ?? []) as Array<{ action: string }>).map((event) => event.action);
      },
      (found) => found.length > 0,
      { what: "the refusal recorded", intervalMs: 200 },
    );
    expect(actions).toEqual(["call.unauthenticated"]);
  });
});
