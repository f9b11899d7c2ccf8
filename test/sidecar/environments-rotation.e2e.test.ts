// Environment requirements and a secret's rotation window end to end: the real token-service
// (PostgreSQL, NATS) and a real sidecar process with an inline policy. The seeds' own policies (owners,
// optional-key routes, the instance secret) run in test/seeds/.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send } from "../harness/http-client.js";
import { type NatsServer, startNats } from "../harness/index.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { bearer, errorOf } from "./credentials.js";
import { type RecordingUpstream, startRecordingUpstream } from "./recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "./sidecar-process.js";

const ROTATION_POLICY = `
version: 1
preset: all-private
rules:
  - name: prod-only
    path: /billing/**
    kind: key
    environments: [prod]
  - name: in-window
    path: /hooks/open
    kind: secret
    secretEnv: HOOK_SECRET
    previousSecret: hook-secret-previous-0123456789
    previousSecretUntil: 2999-01-01T00:00:00Z
  - name: window-ended
    path: /hooks/closed
    kind: secret
    secretEnv: HOOK_SECRET
    previousSecret: hook-secret-previous-0123456789
    previousSecretUntil: 2020-01-01T00:00:00Z
`;

let nats: NatsServer;
let service: TestService;
let upstream: RecordingUpstream;
let rotation: SidecarProcess;
let prod: { token: string };
let staging: { token: string };

beforeAll(async () => {
  [nats, upstream] = await Promise.all([startNats(), startRecordingUpstream()]);
  service = await startTestService({ natsUrl: nats.url });
  const teamId = (await service.teams().createTeam({ name: "environments-e2e" })).team?.id ?? "";
  rotation = await spawnSidecar({
    upstream: upstream.url,
    tokenServiceUrl: service.grpcUrl,
    natsUrl: nats.url,
    policy: ROTATION_POLICY,
    env: { HOOK_SECRET: "hook-secret-current-0123456789" },
  });
  const issue = (environment: string) =>
    service.tokens().issue({ teamId, name: `${environment}-key`, scopes: ["write"], environment });
  [prod, staging] = await Promise.all([issue("prod"), issue("staging")]);
});

afterAll(async () => {
  await rotation?.stop();
  await service?.close();
  await upstream?.app.close();
  await nats?.dispose();
});

describe("environment requirements and rotation windows", () => {
  it("forwards a prod key and refuses a staging key with 403 naming the environment", async () => {
    expect((await send(rotation.url, "GET", "/billing/x", bearer(prod.token))).status).toBe(200);
    const refused = await send(rotation.url, "GET", "/billing/x", bearer(staging.token));
    expect(refused.status).toBe(403);
    expect(errorOf(refused).message).toContain("prod");
    expect((await send(rotation.url, "GET", "/other", bearer(staging.token))).status).toBe(200);
  });

  it("accepts the previous secret within its window and not after it ends", async () => {
    const previous = bearer("hook-secret-previous-0123456789");
    const current = bearer("hook-secret-current-0123456789");
    expect((await send(rotation.url, "POST", "/hooks/open", previous)).status).toBe(200);
    expect((await send(rotation.url, "POST", "/hooks/open", current)).status).toBe(200);
    expect((await send(rotation.url, "POST", "/hooks/closed", previous)).status).toBe(401);
    expect((await send(rotation.url, "POST", "/hooks/closed", current)).status).toBe(200);
    expect(rotation.output()).toMatch(/previousSecretUntil 2020-01-01T00:00:00Z has passed/);
    expect(rotation.output()).not.toContain("hook-secret-previous");
  });
});
