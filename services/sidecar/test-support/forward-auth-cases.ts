import { expect } from "vitest";
import type { SidecarStack } from "./sidecar-stack.js";

// What the forward-auth tests of the nginx and Traefik examples share: the policy behind them, the
// requests each must keep from the app, and what the app sees for a valid key.

/** Reads public, `/admin/**` needs `admin`, `GET /feed` takes `?token=`. */
export const FORWARD_AUTH_POLICY = {
  preset: "reads-public",
  rules: [
    { path: "/admin/**", kind: "key", scopes: ["admin"] },
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

/** Issues the key the identity test uses, and checks the headers the app then sees. */
export function issueWriter(stack: SidecarStack): { token: string; expectIdentity(headers: object): void } {
  const { token, key } = stack.keys.issue({
    scopes: ["write"],
    name: "writer",
    environment: "prod",
    owner: "agent-7",
  });
  return {
    token,
    expectIdentity(headers) {
      expect(headers).toMatchObject({
        "x-latchkey-key-id": key.id,
        "x-latchkey-team-id": "team_demo",
        "x-latchkey-scopes": "write",
        "x-latchkey-key-name": "writer",
        "x-latchkey-environment": "prod",
        "x-latchkey-owner": "agent-7",
      });
    },
  };
}
