import { afterAll, beforeAll, expect } from "vitest";
import { type RawResponse, send } from "../../../test/harness/http-client.js";
import { type EchoedRequest, type SidecarStack, startSidecarStack } from "./sidecar-stack.js";

// What the forward-auth tests of the nginx and Traefik examples share: the policy behind them, the
// requests each must keep from the app, and what the app sees for a valid key.

/** Reads public, `/admin/**` needs `admin`, `GET /feed` takes `?token=`, `/burst` allows 2 a minute. */
export const FORWARD_AUTH_POLICY = {
  preset: "reads-public",
  rules: [
    { path: "/admin/**", kind: "key", scopes: ["admin"] },
    { path: "/burst", kind: "key", rateLimit: [{ name: "burst", limit: 2, window: "60s" }] },
    { methods: ["GET"], path: "/feed", kind: "key", scopes: ["read"], allowQueryToken: true },
  ],
};

/** Forged identity, method-override and rewrite headers: none may reach the app. */
export const FORGED_HEADER_SETS: readonly Record<string, string>[] = [
  { "x-latchkey-key-id": "key_forged", "X-Latchkey-Scopes": "admin" },
  { "X-Latchkey-Team-Id": "team_other" },
  { "X-Latchkey-Owner": "agent-7" },
  { "X-Latchkey-Environment": "prod" },
  { "X-HTTP-Method-Override": "DELETE" },
  { "X-Method-Override": "DELETE" },
  { "X-Original-URL": "/admin/users" },
  { "X-Rewrite-URL": "/admin/users" },
];

/** Paths an app could read as another path than the policy matched. */
export const AMBIGUOUS_PATHS: readonly string[] = [
  "/docs/../admin/users",
  "/docs/%2e%2e/admin/users",
  "/admin;x/users",
  "//admin/users",
];

/** Forward-auth questions the sidecar has logged so far. */
export const forwardAuthCalls = (stack: SidecarStack): number =>
  stack.logLines.filter((line) => line.via === "forward-auth").length;

/**
 * Sends `POST /chats?x=1` with a body and a new `write` key through the front at `url`, checks that
 * the app got that request with the key's identity, and returns what the app saw and the token.
 */
export async function postAsWriter(
  url: string,
  stack: SidecarStack,
): Promise<{ echo: EchoedRequest; token: string }> {
  const { token, key } = stack.keys.issue({
    scopes: ["write"],
    name: "writer",
    environment: "prod",
    owner: "agent-7",
  });
  const response = await send(url, "POST", "/chats?x=1", { authorization: `Bearer ${token}` }, "{}");
  expect(response.status).toBe(200);
  const echo = response.json<EchoedRequest>();
  expect(echo).toMatchObject({ method: "POST", path: "/chats?x=1", bodyBytes: 2 });
  expect(echo.headers).toMatchObject({
    "x-latchkey-key-id": key.id,
    "x-latchkey-team-id": "team_demo",
    "x-latchkey-scopes": "write",
    "x-latchkey-key-name": "writer",
    "x-latchkey-environment": "prod",
    "x-latchkey-owner": "agent-7",
  });
  return { echo, token };
}

/** A missing and a bad key, through the front at `url`: 401 with the sidecar's WWW-Authenticate. */
export async function expectMissingAndBadKeyRefused(url: string): Promise<void> {
  const none = await send(url, "POST", "/chats", {}, "{}");
  expect(none.status).toBe(401);
  expect(none.headers["www-authenticate"]).toBe('Bearer realm="latchkey"');
  const bad = await send(url, "POST", "/chats", { authorization: "Bearer lk_test_nope" }, "{}");
  expect(bad.status).toBe(401);
  expect(bad.headers["www-authenticate"]).toBe('Bearer realm="latchkey", error="invalid_token"');
}

/** A proxy in front of the demo app that asks the sidecar (nginx, the Traefik shape). */
export interface ForwardAuthFront {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts, for the test file, a sidecar stack with {@link FORWARD_AUTH_POLICY} and `start`'s
 * front in front of its app; stops both after the file. Read the fields inside tests.
 */
export function useForwardAuthFront<Front extends ForwardAuthFront>(
  start: (ports: { sidecarPort: number; appPort: number }) => Promise<Front>,
  timeoutMs: number,
): { readonly stack: SidecarStack; readonly front: Front; readonly url: string } {
  const started = {} as { stack: SidecarStack; front: Front; url: string };
  beforeAll(async () => {
    started.stack = await startSidecarStack({ policy: FORWARD_AUTH_POLICY });
    started.front = await start({ sidecarPort: started.stack.sidecar.port, appPort: started.stack.app.port });
    started.url = `http://127.0.0.1:${started.front.port}`;
  }, timeoutMs);
  afterAll(async () => {
    await started.front?.stop();
    await started.stack?.close();
  });
  return started;
}

/** A public route's answer: the app answered, and saw no identity. */
export function expectPublicWithoutIdentity(response: RawResponse): void {
  expect(response.status).toBe(200);
  const echo = response.json<EchoedRequest>();
  expect(echo.headers["x-latchkey-key-id"]).toBeUndefined();
  expect(echo.headers["x-latchkey-scopes"]).toBeUndefined();
}
