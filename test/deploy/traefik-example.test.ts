import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { FORWARD_AUTH_PATH } from "../../services/sidecar/src/forward-auth.js";
import { identityHeaders } from "../../services/sidecar/src/proxy/identity-headers.js";

// Traefik is not installable here; this pins the settings the sidecar's forward-auth relies on.
const example = parse(readFileSync("deploy/traefik/latchkey-forward-auth.yml", "utf8")) as {
  http: {
    middlewares: { latchkey: { forwardAuth: Record<string, unknown> } };
    routers: Record<string, { rule: string; service: string; priority?: number; middlewares?: string[] }>;
    services: Record<string, { loadBalancer: { servers: { url: string }[] } }>;
  };
};
const forwardAuth = example.http.middlewares.latchkey.forwardAuth;

describe("the Traefik ForwardAuth example", () => {
  it("asks the sidecar's forward-auth path", () => {
    expect(new URL(String(forwardAuth.address)).pathname).toBe(FORWARD_AUTH_PATH);
  });

  it("never believes a client's X-Forwarded-* (X-Forwarded-Uri and -Method are what is decided)", () => {
    expect(forwardAuth.trustForwardHeader).toBe(false);
  });

  it("sends the sidecar every client header, so forged identity headers are refused", () => {
    expect(forwardAuth.authRequestHeaders).toBeUndefined();
  });

  it("copies exactly the identity headers the sidecar sets onto the request", () => {
    const key = {
      id: "k",
      teamId: "t",
      scopes: [],
      name: "n",
      environment: "live",
      owner: "o",
      keychainId: "kc",
    };
    const names = identityHeaders(key as never).filter((_, index) => index % 2 === 0);
    expect((forwardAuth.authResponseHeaders as string[]).map((name) => name.toLowerCase())).toEqual(names);
  });

  it("puts every router to the app behind the middleware; the others go to the sidecar's proxy", () => {
    const address = new URL(String(forwardAuth.address));
    for (const router of Object.values(example.http.routers)) {
      if (router.middlewares?.includes("latchkey")) continue;
      const [server] = example.http.services[router.service]?.loadBalancer.servers ?? [];
      // The sidecar's own listener (proxy and forward-auth share it): it checks what it forwards.
      expect(new URL(server?.url ?? "").host).toBe(address.host);
    }
    expect(example.http.routers.app?.middlewares).toEqual(["latchkey"]);
  });

  it("sends WebSockets and event streams to the sidecar's proxy, ahead of the app router", () => {
    const streams = example.http.routers["latchkey-streams"];
    expect(streams?.rule).toMatch(/HeaderRegexp\(`Upgrade`, `\(\?i\)\^websocket\$`\)/);
    expect(streams?.rule).toMatch(/HeaderRegexp\(`Accept`, `\(\?i\)text\/event-stream`\)/);
    // Traefik's default priority is the rule's length.
    expect(streams?.priority ?? 0).toBeGreaterThan(example.http.routers.app?.rule.length ?? 0);
  });
});
