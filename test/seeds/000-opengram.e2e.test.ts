// Seed 000 (shared/seeds/000_*): Opengram's instance secret, moved to the sidecar unchanged. The
// secret is what `opengram init` generates (og_ + random base64url); the sidecars run the shipped
// examples: reads public with the secret from OPENGRAM_INSTANCE_SECRET (a Docker deployment), and
// `readEndpointsRequireInstanceSecret: true` with the secret written in the file (Opengram's
// `security.instanceSecret`, as an operator copies it). Each walks the seed: the read endpoints,
// the writes, and the SSE stream with `?token=`.
import { randomBytes } from "node:crypto";
import { compilePolicy, loadPolicy } from "@latchkey/sidecar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { send } from "../harness/http-client.js";
import { bearer, errorOf } from "../sidecar/credentials.js";
import { examplePath, exampleText } from "../sidecar/examples.js";
import { echoed } from "../sidecar/recording-upstream.js";
import type { SidecarProcess } from "../sidecar/sidecar-process.js";
import { type SeedStack, STARTUP_MS, startSeedStack } from "./seed-stack.js";

// What `opengram init` writes: og_ and a random base64url string.
const ENV_SECRET = `og_${randomBytes(32).toString("base64url")}`;
const FILE_SECRET = `og_${randomBytes(32).toString("base64url")}`;
const STREAM = "/api/v1/events/stream";

/** The example as an operator fills it in: the commented `secret:` lines, with their secret. */
function withFileSecret(text: string, secret: string): string {
  const filled = text
    .replace(/# secret: &instance og_….*$/m, `secret: &instance ${secret}`)
    .replace(/# secret: \*instance$/m, "secret: *instance");
  expect(filled.match(/^\s+secret: /gm), "the example's commented secret lines").toHaveLength(2);
  return filled;
}

let stack: SeedStack;
/** policy-000-reads-public.yaml as shipped, OPENGRAM_INSTANCE_SECRET set. */
let readsPublic: SidecarProcess;
/** policy-000-all-private.yaml with the secret in the file, OPENGRAM_INSTANCE_SECRET unset. */
let allPrivate: SidecarProcess;

beforeAll(async () => {
  stack = await startSeedStack();
  [readsPublic, allPrivate] = await Promise.all([
    stack.sidecar({ policy: "policy-000-reads-public.yaml", env: { OPENGRAM_INSTANCE_SECRET: ENV_SECRET } }),
    stack.sidecar({ policyText: withFileSecret(exampleText("policy-000-all-private.yaml"), FILE_SECRET) }),
  ]);
}, STARTUP_MS);
afterAll(() => stack?.close());

// Opengram's read endpoints, public unless readEndpointsRequireInstanceSecret.
const READS = [
  "/api/v1/chats",
  "/api/v1/chats/chat_1",
  "/api/v1/chats/unread-summary",
  "/api/v1/chats/pending-summary",
  "/api/v1/chats/chat_1/messages",
  "/api/v1/requests",
  "/api/v1/media",
  "/api/v1/media/m_1",
  "/api/v1/media/m_1/file",
  "/api/v1/media/m_1/thumbnail",
  "/api/v1/config",
  "/api/v1/search?q=invoice",
  "/api/v1/tags/suggestions",
  "/api/v1/health",
];

describe("seed 000: the reads-public / all-private switch", () => {
  const modes = () =>
    [
      ["reads public", readsPublic, ENV_SECRET, 200],
      ["all private", allPrivate, FILE_SECRET, 401],
    ] as const;

  it("serves the read endpoints without the secret only when reads are public", async () => {
    for (const [mode, sidecar, secret, anonymous] of modes()) {
      for (const path of READS) {
        expect((await send(sidecar.url, "GET", path)).status, `${mode} GET ${path}`).toBe(anonymous);
        const keyed = await send(sidecar.url, "GET", path, bearer(secret));
        expect(keyed.status, `${mode} GET ${path} with the secret`).toBe(200);
        expect(echoed(keyed).headers.authorization).toBeUndefined();
      }
    }
  });

  it("needs the secret on every mutating request in both modes", async () => {
    for (const [mode, sidecar, secret] of modes()) {
      const body = JSON.stringify({ agentId: "default" });
      const json = { "content-type": "application/json" };
      const refused = await send(sidecar.url, "POST", "/api/v1/chats", json, body);
      expect(refused.status, mode).toBe(401);
      expect(refused.headers["www-authenticate"]).toMatch(/^Bearer /);
      const created = await send(sidecar.url, "POST", "/api/v1/chats", { ...json, ...bearer(secret) }, body);
      expect(created.status, mode).toBe(200);
      expect(echoed(created)).toMatchObject({ method: "POST", bodyBytes: body.length });
      for (const method of ["PUT", "PATCH", "DELETE"]) {
        expect((await send(sidecar.url, method, "/api/v1/chats/chat_1")).status, `${mode} ${method}`).toBe(
          401,
        );
        expect((await send(sidecar.url, method, "/api/v1/chats/chat_1", bearer(secret))).status).toBe(200);
      }
    }
  });

  it("refuses any other secret with one answer, the other mode's and the next character's alike", async () => {
    for (const [mode, sidecar, secret] of modes()) {
      const other = secret === ENV_SECRET ? FILE_SECRET : ENV_SECRET;
      const typo = `${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`;
      for (const wrong of [other, typo, `${secret}x`, secret.slice(0, -1), "og_"]) {
        const response = await send(sidecar.url, "POST", "/api/v1/chats", bearer(wrong));
        expect(response.status, mode).toBe(401);
        expect(errorOf(response).code).toBe("invalid_token");
      }
    }
  });
});

describe("seed 000: the SSE stream takes the secret as ?token=", () => {
  it("always needs the secret, as a header or ?token=, which never reaches Opengram", async () => {
    for (const [sidecar, secret] of [
      [readsPublic, ENV_SECRET],
      [allPrivate, FILE_SECRET],
    ] as const) {
      expect((await send(sidecar.url, "GET", STREAM)).status).toBe(401);
      expect((await send(sidecar.url, "GET", `${STREAM}?token=og_wrong-secret-0123456789`)).status).toBe(401);
      const queried = await send(
        sidecar.url,
        "GET",
        `${STREAM}?token=${encodeURIComponent(secret)}&since=42`,
      );
      expect(queried.status).toBe(200);
      expect(echoed(queried).path).toBe(`${STREAM}?since=42`);
      expect((await send(sidecar.url, "GET", STREAM, bearer(secret))).status).toBe(200);
    }
    const seen = stack.upstream.seen.join("\n");
    expect(seen).not.toContain(ENV_SECRET);
    expect(seen).not.toContain(FILE_SECRET);
  });

  it("takes ?token= on the stream only, and drops it from every other URL", async () => {
    const writes = await send(readsPublic.url, "POST", `/api/v1/chats?token=${ENV_SECRET}`);
    expect(writes.status).toBe(401);
    const read = await send(readsPublic.url, "GET", `/api/v1/chats?token=${ENV_SECRET}`);
    expect(read.status).toBe(200);
    expect(echoed(read).path).toBe("/api/v1/chats");
    expect((await send(allPrivate.url, "GET", `/api/v1/chats?token=${FILE_SECRET}`)).status).toBe(401);
  });

  it("logs the stream's requests without the query, and neither secret anywhere", async () => {
    const line = await readsPublic.waitForAccessLine(
      (entry) => entry.path === STREAM && entry.status === 200,
    );
    expect(line.decision).toBe("secret");
    for (const sidecar of [readsPublic, allPrivate]) {
      expect(sidecar.output()).not.toContain(ENV_SECRET);
      expect(sidecar.output()).not.toContain(FILE_SECRET);
    }
  });
});

describe("seed 000: the shipped examples hold no usable secret", () => {
  it("refuse to start without OPENGRAM_INSTANCE_SECRET, and with the placeholder uncommented", () => {
    for (const name of ["policy-000-reads-public.yaml", "policy-000-all-private.yaml"]) {
      expect(() => loadPolicy(examplePath(name), {}), name).toThrow(/OPENGRAM_INSTANCE_SECRET is not set/);
      const placeholder = exampleText(name).replace("# secret: &instance", "secret: &instance");
      expect(() => compilePolicy(parse(placeholder), { env: {} }), name).toThrow(/at least 16 characters/);
    }
  });
});
