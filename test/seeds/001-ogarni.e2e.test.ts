// Seed 001 (shared/seeds/001_*): Ogarni.AI's `oai_` tokens, a base64url payload and an HMAC-SHA256
// signature, sent in X-API-Key, each with a scope (read, write, admin). After the move Latchkey issues
// them (format `signed`), and the tokens customers already hold, signed with Ogarni's own secret, are
// imported by their SHA-256 and verified with that secret (the format's legacyKid). A customer is a
// team (so `admin`, "token management", manages that customer's own tokens). The sidecar runs the
// shipped policy-001-signed-scoped-keys.yaml and ratelimit-001-scopes.yaml; the test walks the seed:
// scopes on routes, 401 after delete, and forged signatures refused before any database read.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send } from "../harness/http-client.js";
import { apiKey, errorOf } from "../sidecar/credentials.js";
import { echoed } from "../sidecar/recording-upstream.js";
import type { SidecarProcess } from "../sidecar/sidecar-process.js";
import { importRow, sha256Hex } from "../token-service/import-rows.js";
import { rowLookups } from "../token-service/scrape-metrics.js";
import { claimsOf, legacySignedToken, withClaims } from "../token-service/signed-tokens.js";
import { type SeedStack, STARTUP_MS, startSeedStack } from "./seed-stack.js";

// Ogarni's HMAC secret, which signed every token its customers hold.
const OGARNI_SECRET = randomBytes(32);
const FORMATS = JSON.stringify([{ name: "oai", kind: "signed", prefix: "oai_", legacyKid: "ogarni" }]);
const SIGNING_KEYS = JSON.stringify([
  { kid: "2026-12", secret: randomBytes(32).toString("base64url"), active: true },
  { kid: "ogarni", secret: OGARNI_SECRET.toString("base64url") },
]);
const SCOPES = ["read", "write", "admin"] as const;
type Scope = (typeof SCOPES)[number];

/** A token as Ogarni made it, signed with its secret (or a forger's). */
const ogarniToken = (claims: object, secret: Buffer = OGARNI_SECRET) => legacySignedToken(claims, secret);

let stack: SeedStack;
let api: SidecarProcess;
let customer: string;
const issued = {} as Record<Scope, { token: string; id: string }>;
/** Tokens Ogarni issued before the move, by scope, and their imported key ids. */
const held = {} as Record<Scope, { token: string; id: string }>;

beforeAll(async () => {
  stack = await startSeedStack({
    keyFormats: FORMATS,
    keySigningKeys: SIGNING_KEYS,
    metricsListen: "127.0.0.1:0",
  });
  const tokens = stack.service.tokens();
  customer = (await stack.service.teams().createTeam({ name: "customer-1234567890" })).team?.id ?? "";
  const [sidecar] = await Promise.all([
    stack.sidecar({ policy: "policy-001-signed-scoped-keys.yaml", rateLimits: "ratelimit-001-scopes.yaml" }),
    ...SCOPES.map(async (scope) => {
      const { token, key } = await tokens.issue({
        teamId: customer,
        name: `My script (${scope})`,
        scopes: [scope],
      });
      issued[scope] = { token, id: key?.id ?? "" };
    }),
  ]);
  api = sidecar;
  // Ogarni kept each token's SHA-256, never the token: the import carries the hash and a hint.
  const before = SCOPES.map((scope, i) => ({
    scope,
    token: ogarniToken({ sub: "1234567890", tid: `tok_${i}`, scope, iat: 1735689600 + i }),
  }));
  const { results, committed } = await tokens.importKeys({
    keys: before.map(({ scope, token }, i) =>
      importRow(customer, {
        externalId: `tok_${i}`,
        name: `imported ${scope} token`,
        scopes: [scope],
        format: "oai",
        sha256: sha256Hex(token),
        hint: `oai_…${token.slice(-4)}`,
      }),
    ),
  });
  expect(committed).toBe(true);
  before.forEach(({ scope, token }, i) => {
    held[scope] = { token, id: results[i]?.keyId ?? "" };
  });
}, STARTUP_MS);
afterAll(() => stack?.close());

const call = (method: string, path: string, token?: string) =>
  send(api.url, method, path, token === undefined ? {} : apiKey(token));
const lookups = () => rowLookups(stack.service.handle.metricsPort ?? 0);

describe("seed 001: signed oai_ keys", () => {
  it("are issued as oai_, a base64url payload and an HMAC-SHA256 signature, naming their scope", () => {
    for (const scope of SCOPES) {
      const { token, id } = issued[scope];
      expect(token).toMatch(/^oai_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
      expect(claimsOf(token)).toMatchObject({ id, team: customer, scopes: [scope], kid: "2026-12" });
    }
  });

  // [method, path, the scope it needs]: reads need read, changes write, token management admin.
  const ROUTES: Array<[string, string, Scope]> = [
    ["GET", "/api/weekly-summaries/latest", "read"],
    ["GET", "/api/receipts?month=2026-11", "read"],
    ["POST", "/api/receipts", "write"],
    ["PATCH", "/api/receipts/r_1", "write"],
    ["DELETE", "/api/receipts/r_1", "write"],
    ["GET", "/api/tokens", "admin"],
    ["POST", "/api/tokens", "admin"],
    ["DELETE", "/api/tokens/tok_9", "admin"],
  ];
  const rank = (scope: Scope) => SCOPES.indexOf(scope);

  it("reach what their scope allows, issued and imported alike, and get 403 naming the scope elsewhere", async () => {
    for (const [kind, keys] of [
      ["issued", issued],
      ["imported", held],
    ] as const) {
      for (const scope of SCOPES) {
        for (const [method, path, needs] of ROUTES) {
          const response = await call(method, path, keys[scope].token);
          const what = `${kind} ${scope} key: ${method} ${path}`;
          if (rank(scope) >= rank(needs)) {
            expect(response.status, what).toBe(200);
            expect(echoed(response).headers).toMatchObject({
              "x-latchkey-key-id": keys[scope].id,
              "x-latchkey-team-id": customer,
              "x-latchkey-scopes": scope,
            });
            expect(echoed(response).headers["x-api-key"]).toBeUndefined();
          } else {
            expect(response.status, what).toBe(403);
            expect(errorOf(response).code).toBe("insufficient_scope");
            expect(response.headers["www-authenticate"]).toContain(`scope="${needs}"`);
          }
        }
      }
    }
    for (const [method, path] of ROUTES)
      expect((await call(method, path)).status, `${method} ${path}`).toBe(401);
  });

  it("are limited per hour by scope: read 1,000, write 2,000, admin 5,000", async () => {
    for (const [scope, limit] of [
      ["read", 1000],
      ["write", 2000],
      ["admin", 5000],
    ] as const) {
      const response = await call("GET", "/api/weekly-summaries/latest", issued[scope].token);
      expect(response.headers["ratelimit-policy"], scope).toBe(`"hourly";q=${limit};w=3600`);
    }
  });
});

describe("seed 001: a deleted token gets 401 at once", () => {
  it("refuses an issued and an imported token as soon as Revoke returns", async () => {
    const fresh = await stack.service
      .tokens()
      .issue({ teamId: customer, name: "to delete", scopes: ["read"] });
    const old = ogarniToken({ sub: "1234567890", tid: "tok_del", scope: "read" });
    const imported = await stack.service.tokens().importKeys({
      keys: [importRow(customer, { externalId: "tok_del", format: "oai", sha256: sha256Hex(old) })],
    });
    for (const [token, keyId] of [
      [fresh.token, fresh.key?.id ?? ""],
      [old, imported.results[0]?.keyId ?? ""],
    ]) {
      expect((await call("GET", "/api/receipts", token)).status).toBe(200);
      const { propagation } = await stack.service
        .tokens()
        .revoke({ keyId, reason: "deleted in Settings > API Tokens", waitTimeout: { seconds: 5n } });
      expect(propagation?.complete).toBe(true);
      const refused = await call("GET", "/api/receipts", token);
      expect(refused.status).toBe(401);
      expect(errorOf(refused).code).toBe("invalid_token");
    }
  });

  it("replaces an imported token by rotation with a Latchkey-signed one", async () => {
    const rotated = await stack.service
      .tokens()
      .rotate({ keyId: held.write.id, gracePeriod: { seconds: 3600n } });
    expect(rotated.token).toMatch(/^oai_/);
    expect(rotated.key).toMatchObject({ scopes: ["write"], rotatedFrom: held.write.id, format: "oai" });
    expect((await call("POST", "/api/receipts", rotated.token)).status).toBe(200);
    expect((await call("POST", "/api/receipts", held.write.token)).status).toBe(200);
  });
});

describe("seed 001: a forged or altered signature", () => {
  it("is refused with 401, and the token-service reads no row for it", async () => {
    const forged = [
      // A read key's claims widened to admin, its signature kept.
      withClaims(issued.read.token, (claims) => ({ ...claims, scopes: ["admin"] })),
      // Another customer's team put in.
      withClaims(issued.admin.token, (claims) => ({ ...claims, team: "team_00000000000000000000" })),
      // Ogarni's own token, widened.
      withClaims(held.read.token, (claims) => ({ ...claims, scope: "admin" })),
      // Minted with a guessed secret, as Ogarni's and as Latchkey's claims.
      ogarniToken({ sub: "1234567890", scope: "admin" }, randomBytes(32)),
      withClaims(ogarniToken({}, randomBytes(32)), () => ({ sub: "1" })),
      // The signature's last character changed.
      `${issued.admin.token.slice(0, -1)}${issued.admin.token.endsWith("A") ? "B" : "A"}`,
    ];
    const before = await lookups();
    for (const token of forged) {
      const response = await call("GET", "/api/tokens", token);
      expect(response.status, token).toBe(401);
      expect(errorOf(response).code).toBe("invalid_token");
    }
    expect(await lookups()).toBe(before);
    expect(api.output()).not.toContain(issued.read.token.split(".")[1]);
  });
});
