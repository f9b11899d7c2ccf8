// Binding keys to where they are used, end to end: a sidecar process in front of team A's app with a
// policy-level `teamsEnv`/`environments` and rule-level `teams`/`environments`, checking keys with the
// real token-service (PostgreSQL, NATS). The attacker's view: a key of another team, of another
// environment, revoked, used up, missing a scope, unknown or malformed all get one 403, identical but
// for the request id, in proxy mode and in forward-auth; only a missing credential is told apart.
import { generateToken } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RawResponse, send } from "../harness/http-client.js";
import { type NatsServer, startNats } from "../harness/index.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { type EchoedRequest, type RecordingUpstream, startRecordingUpstream } from "./recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "./sidecar-process.js";

let nats: NatsServer;
let service: TestService;
let upstream: RecordingUpstream;
let sidecar: SidecarProcess;
let teamA: string;
let teamB: string;
/** Tokens by what they are. */
const keys: Record<string, string> = {};
const ids: Record<string, string> = {};

function policyFor(teamB: string, teamA: string): string {
  return `
version: 1
preset: all-private
# Team A's app: its keys, live ones, unless a rule says otherwise.
teamsEnv: APP_TEAMS
environments: [live]
rules:
  - name: health
    methods: [GET]
    path: /health
    kind: public
  - name: writes
    methods: [POST, PUT, PATCH, DELETE]
    paths: ["/**"]
    kind: key
    scopes: [write]
  - name: staging-tools
    path: /staging/**
    kind: key
    environments: [staging]
  - name: partner-api
    path: /partner/**
    kind: key
    teams: [${teamB}, ${teamA}]
`;
}

async function issue(name: string, teamId: string, fields: Record<string, unknown> = {}): Promise<void> {
  const issued = await service.tokens().issue({ teamId, name, scopes: ["write"], ...fields });
  keys[name] = issued.token;
  ids[name] = issued.key?.id ?? "";
}

beforeAll(async () => {
  [nats, upstream] = await Promise.all([startNats(), startRecordingUpstream()]);
  service = await startTestService({ natsUrl: nats.url });
  teamA = (await service.teams().createTeam({ name: "binding-a" })).team?.id ?? "";
  teamB = (await service.teams().createTeam({ name: "binding-b" })).team?.id ?? "";
  await Promise.all([
    issue("own", teamA),
    issue("ownRead", teamA, { scopes: ["read"] }),
    issue("ownStaging", teamA, { environment: "staging" }),
    issue("ownRevoked", teamA),
    issue("other", teamB),
    issue("otherRead", teamB, { scopes: ["read"] }),
    issue("otherRevoked", teamB),
    issue("otherUsedUp", teamB, { usageLimit: { remaining: 1n } }),
  ]);
  await service.tokens().revoke({ keyId: ids.ownRevoked });
  await service.tokens().revoke({ keyId: ids.otherRevoked });
  // Its one use, spent where it belongs: from now on it answers USAGE_EXCEEDED, with its key.
  expect((await service.tokens(null).verify({ token: keys.otherUsedUp })).result).toBeDefined();
  keys.unknown = generateToken({ prefix: "lk", environment: "live" });
  keys.malformed = "lk_live_thisIsNotAKeyOfAnyFormat0000";
  sidecar = await spawnSidecar({
    upstream: upstream.url,
    tokenServiceUrl: service.grpcUrl,
    natsUrl: nats.url,
    policy: policyFor(teamB, teamA),
    env: { APP_TEAMS: teamA },
  });
});

afterAll(async () => {
  await sidecar?.stop();
  await service?.close();
  await upstream?.app.close();
  await nats?.dispose();
});

const bearer = (name: string) => ({ authorization: `Bearer ${keys[name]}` });

/** What a client can compare between two answers: all but the date and the request id. */
function comparable(response: RawResponse): unknown {
  const { date: _date, "x-request-id": _id, ...headers } = response.headers;
  const body = JSON.parse(response.body) as { error: Record<string, unknown> };
  delete body.error.requestId;
  return { status: response.status, headers, body };
}

const NOT_ACCEPTED = [
  "other",
  "otherRevoked",
  "otherRead",
  "otherUsedUp",
  "unknown",
  "malformed",
  "ownRevoked",
];

describe("a sidecar bound to team A, live keys", () => {
  it("forwards team A's live key with its identity", async () => {
    const response = await send(sidecar.url, "POST", "/orders", bearer("own"), "{}");
    expect(response.status).toBe(200);
    expect(response.json<EchoedRequest>().headers["x-latchkey-team-id"]).toBe(teamA);
    expect((await send(sidecar.url, "GET", "/orders", bearer("ownRead"))).status).toBe(200);
  });

  it.each(["GET", "POST"])(
    "answers %s with one 403 for every credential it does not accept, byte for byte but the request id",
    async (method) => {
      const before = upstream.seen.length;
      const answers = new Map<string, unknown>();
      for (const name of NOT_ACCEPTED) {
        const response = await send(
          sidecar.url,
          method,
          "/orders",
          bearer(name),
          method === "POST" ? "{}" : undefined,
        );
        expect(response.status, name).toBe(403);
        expect(response.headers["www-authenticate"], name).toBeUndefined();
        expect(response.headers["retry-after"], name).toBeUndefined();
        expect(response.body, name).not.toContain(teamB);
        expect(response.body, name).not.toContain(teamA);
        answers.set(name, comparable(response));
      }
      const reference = answers.get("unknown");
      for (const [name, answer] of answers) expect(answer, `${name} vs unknown`).toEqual(reference);
      expect(reference).toMatchObject({ body: { error: { code: "forbidden" } } });
      expect(upstream.seen.length).toBe(before);
    },
  );

  it("tells apart only a missing credential (401), which says nothing about any key", async () => {
    const response = await send(sidecar.url, "GET", "/orders");
    expect(response.status).toBe(401);
    expect(response.headers["www-authenticate"]).toBe('Bearer realm="latchkey"');
  });

  it("keeps team A's own answers: a missing scope is 403 insufficient_scope for its own key", async () => {
    const response = await send(sidecar.url, "POST", "/orders", bearer("ownRead"), "{}");
    expect(response.status).toBe(403);
    expect(response.json<{ error: { code: string } }>().error.code).toBe("insufficient_scope");
  });

  it("refuses the same in forward-auth, from the same one answer", async () => {
    const ask = (name: string) =>
      send(sidecar.url, "GET", "/_latchkey/auth", {
        ...bearer(name),
        "x-original-uri": "/orders",
        "x-original-method": "GET",
      });
    const reference = comparable(await ask("unknown"));
    for (const name of NOT_ACCEPTED) expect(comparable(await ask(name)), name).toEqual(reference);
    expect((await ask("own")).status).toBe(200);
    const proxied = comparable(await send(sidecar.url, "GET", "/orders", bearer("unknown")));
    expect(reference).toEqual(proxied);
  });

  it("logs what the client is not told: which team's key it was", async () => {
    await send(sidecar.url, "GET", "/log-me", bearer("other"));
    await send(sidecar.url, "GET", "/log-me-too", bearer("ownStaging"));
    const line = await sidecar.waitForAccessLine((entry) => entry.path === "/log-me");
    expect(line).toMatchObject({ decision: "wrong_team", status: 403, keyId: ids.other, teamId: teamB });
    const staging = await sidecar.waitForAccessLine((entry) => entry.path === "/log-me-too");
    expect(staging).toMatchObject({ decision: "wrong_environment", status: 403, keyId: ids.ownStaging });
    expect(sidecar.output()).not.toContain(keys.other);
  });
});

describe("rule-level teams and environments", () => {
  it("a rule's environments replace the policy's: staging keys on /staging, live keys refused there", async () => {
    expect((await send(sidecar.url, "GET", "/staging/deploy", bearer("ownStaging"))).status).toBe(200);
    const live = await send(sidecar.url, "GET", "/staging/deploy", bearer("own"));
    const unknown = await send(sidecar.url, "GET", "/staging/deploy", bearer("unknown"));
    expect(live.status).toBe(403);
    expect(comparable(live)).toEqual(comparable(unknown));
    expect(live.json<{ error: { message: string } }>().error.message).toContain("staging");
  });

  it("a rule's teams replace the policy's: team B's key on /partner, still not elsewhere", async () => {
    const partner = await send(sidecar.url, "GET", "/partner/orders", bearer("other"));
    expect(partner.status).toBe(200);
    expect(partner.json<EchoedRequest>().headers["x-latchkey-team-id"]).toBe(teamB);
    expect((await send(sidecar.url, "GET", "/partner/orders", bearer("own"))).status).toBe(200);
    expect((await send(sidecar.url, "GET", "/orders", bearer("other"))).status).toBe(403);
    // The policy's environments still hold on the partner rule.
    expect((await send(sidecar.url, "GET", "/partner/orders", bearer("ownStaging"))).status).toBe(403);
  });

  it("leaves public routes public", async () => {
    expect((await send(sidecar.url, "GET", "/health", bearer("other"))).status).toBe(200);
  });
});
