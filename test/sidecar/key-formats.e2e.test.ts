// The sidecar with a deployment's key formats (LATCHKEY_KEY_FORMATS): keys of every listed format reach
// the app, a key of a format not listed is refused by the sidecar itself (no Verify), and a forged
// signed key is refused by the token-service without a database read. The token-service is real
// (PostgreSQL), the sidecar a child process configured by environment variables.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSidecarConfig } from "@latchkey/sidecar";
import { generateToken } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send } from "../harness/http-client.js";
import { rowLookups, scrape } from "../token-service/scrape-metrics.js";
import { withClaims } from "../token-service/signed-tokens.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { echoed, type RecordingUpstream, startRecordingUpstream } from "./recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "./sidecar-process.js";

const FORMATS = JSON.stringify([
  { name: "og-live", kind: "base64url", prefix: "og_live_" },
  { name: "oag", kind: "hex", prefix: "oag_", length: 32 },
  { name: "oai", kind: "signed", prefix: "oai_" },
]);

let service: TestService;
let upstream: RecordingUpstream;
let sidecar: SidecarProcess;
let teamId: string;

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  service = await startTestService({
    settings: {
      metricsListen: "127.0.0.1:0",
      keyFormats: FORMATS,
      keySigningKeys: JSON.stringify([
        { kid: "k1", secret: Buffer.alloc(32, 5).toString("base64url"), active: true },
      ]),
    },
  });
  teamId = (await service.teams().createTeam({ name: "formats-e2e", keyFormat: "og-live" })).team?.id ?? "";
  sidecar = await spawnSidecar({
    upstream: upstream.url,
    tokenServiceUrl: service.grpcUrl,
    env: { LATCHKEY_KEY_FORMATS: FORMATS },
  });
});

afterAll(async () => {
  await sidecar?.stop();
  await service?.close();
  await upstream?.app.close();
});

const get = (token: string) => send(sidecar.url, "GET", "/anything", { authorization: `Bearer ${token}` });
const verifyCalls = async () =>
  (await scrape(service.handle.metricsPort ?? 0))
    .split("\n")
    .filter((line) => line.startsWith("latchkey_token_service_verify_total{"))
    .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
const lookups = () => rowLookups(service.handle.metricsPort ?? 0);

describe("a sidecar with LATCHKEY_KEY_FORMATS", () => {
  it("lets a key of every listed format through, with its identity", async () => {
    for (const format of ["og-live", "oag", "oai"]) {
      const { token, key } = await service
        .tokens()
        .issue({ teamId, name: `e2e-${format}`, scopes: ["read"], format });
      const response = await get(token);
      expect(response.status, format).toBe(200);
      expect(echoed(response).headers["x-latchkey-key-id"]).toBe(key?.id);
    }
  });

  it("refuses a key of a format not listed without asking the token-service", async () => {
    const { token } = await service.tokens().issue({ teamId, name: "e2e-og-live" });
    expect(token.startsWith("og_live_")).toBe(true);
    const before = await verifyCalls();
    for (const foreign of [
      `ghp_${"a".repeat(36)}`,
      generateToken({ prefix: "lk", environment: "live" }),
      `oag_${"a".repeat(33)}`,
      `og_${"a".repeat(43)}`,
    ]) {
      expect((await get(foreign)).status, foreign).toBe(401);
    }
    expect(await verifyCalls()).toBe(before);
  });

  it("refuses a forged signed key, and the token-service reads no row for it", async () => {
    const { token } = await service
      .tokens()
      .issue({ teamId, name: "e2e-signed", scopes: ["read"], format: "oai" });
    const forged = withClaims(token, (claims) => ({ ...claims, scopes: ["admin"] }));
    const before = await lookups();
    expect((await get(forged)).status).toBe(401);
    expect(await lookups()).toBe(before);
  });

  it("refuses a revoked signed key", async () => {
    const { token, key } = await service.tokens().issue({ teamId, name: "e2e-revoked", format: "oai" });
    await service.tokens().revoke({ keyId: key?.id ?? "" });
    expect((await get(token)).status).toBe(401);
  });
});

describe("the sidecar's LATCHKEY_KEY_FORMATS", () => {
  const base = { LATCHKEY_UPSTREAM: "http://127.0.0.1:3000" };
  it("is refused when bad, naming the variable and the entry", () => {
    expect(() => loadSidecarConfig({ ...base, LATCHKEY_KEY_FORMATS: "{" })).toThrow(
      /LATCHKEY_KEY_FORMATS: must be JSON/,
    );
    expect(() =>
      loadSidecarConfig({
        ...base,
        LATCHKEY_KEY_FORMATS: '[{"name":"x","kind":"hex","prefix":"x_","length":3}]',
      }),
    ).toThrow(/LATCHKEY_KEY_FORMATS: \[0\]\.length/);
  });
  it("takes no signing keys: a config file that gives it some is refused", () => {
    const file = join(mkdtempSync(join(tmpdir(), "latchkey-formats-")), "sidecar.yaml");
    writeFileSync(file, "keySigningKeys: []\n");
    expect(() => loadSidecarConfig({ ...base, LATCHKEY_CONFIG: file })).toThrow(
      /unknown setting\(s\) keySigningKeys/,
    );
  });
});
