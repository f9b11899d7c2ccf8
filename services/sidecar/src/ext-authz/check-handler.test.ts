import { afterEach, describe, expect, it } from "vitest";
import {
  type EnvoyRequest,
  envoyCheckRequest,
  extAuthzClient,
  outcomeOf,
} from "../../../../test/sidecar/ext-authz-client.js";
import { type SidecarStack, startSidecarStack } from "../../test-support/sidecar-stack.js";
import type { SidecarConfigInput } from "../config.js";
import { ANSWERS_PER_KEY } from "./check-response.js";
import { callerAddress } from "./ext-authz-server.js";

let stack: SidecarStack | undefined;

afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function start(config: Partial<SidecarConfigInput> = {}) {
  stack = await startSidecarStack({
    policy: { preset: "reads-public", rules: [{ path: "/admin/**", kind: "key", scopes: ["admin"] }] },
    config: { extAuthzListen: "127.0.0.1:0", ...config },
  });
  const client = extAuthzClient(stack.sidecar.extAuthzPort as number);
  return {
    keys: stack.keys,
    check: async (request: EnvoyRequest) => outcomeOf(await client.check(envoyCheckRequest(request))),
  };
}

describe("the ext_authz listener", () => {
  it("is off unless configured", async () => {
    stack = await startSidecarStack();
    expect(stack.sidecar.extAuthzPort).toBeUndefined();
  });

  it("answers only trusted proxies: anyone else learns nothing about a key", async () => {
    const { keys, check } = await start({ trustedProxies: "192.0.2.1" });
    const { token } = keys.issue({ scopes: ["admin"] });
    const outcome = await check({ path: "/admin/x", headers: [["authorization", `Bearer ${token}`]] });
    expect(outcome).toMatchObject({ allowed: false, status: 403, headers: expect.any(Object) });
    expect(outcome.body?.error.message).toMatch(/trusted proxies/);
    expect(outcome.headers["x-latchkey-key-id"]).toBeUndefined();
    expect(keys.calls).toBe(0);
  });

  it("in log mode allows what it would refuse, without an identity, and still removes what it must", async () => {
    const { check } = await start({ enforcement: "log" });
    const outcome = await check({
      path: "/admin/x",
      headers: [
        ["authorization", "Bearer lk_test_nope"],
        ["x-latchkey-key-id", "key_forged"],
      ],
    });
    expect(outcome).toMatchObject({ allowed: true, headers: {} });
    expect([...outcome.headersToRemove].sort()).toEqual(["authorization", "x-latchkey-key-id"]);
    expect(stack?.logLines.at(-1)).toMatchObject({ via: "ext-authz", status: 200, wouldRefuse: 401 });
  });

  it("in disabled mode checks nothing and passes the credential, but never a forged identity", async () => {
    const { check } = await start({ enforcement: "disabled" });
    const outcome = await check({
      path: "/admin/x",
      headers: [
        ["authorization", "Bearer anything"],
        ["x_latchkey_team_id", "team_forged"],
      ],
    });
    expect(outcome).toMatchObject({ allowed: true, headers: {}, headersToRemove: ["x_latchkey_team_id"] });
  });
});

describe("host rules", () => {
  it("decide on Envoy's :authority, and only on a host written canonically, as the app gets it", async () => {
    stack = await startSidecarStack({
      policy: { preset: "all-private", rules: [{ host: "*.pkg.example", path: "/**", kind: "public" }] },
      config: { extAuthzListen: "127.0.0.1:0" },
    });
    const client = extAuthzClient(stack.sidecar.extAuthzPort as number);
    const check = async (request: EnvoyRequest) => outcomeOf(await client.check(envoyCheckRequest(request)));
    for (const rawHeaders of [false, true]) {
      expect(await check({ path: "/x", authority: "stripe.pkg.example", rawHeaders })).toMatchObject({
        allowed: true,
      });
      expect(await check({ path: "/x", authority: "stripe.pkg.example:8443", rawHeaders })).toMatchObject({
        allowed: true,
      });
      expect(await check({ path: "/x", authority: "app.test", rawHeaders })).toMatchObject({
        allowed: false,
        status: 401,
      });
      // The app reads the host as sent: a form the sidecar would have to rewrite is refused, not matched.
      for (const authority of ["Stripe.pkg.example", "stripe.pkg.example."]) {
        expect(await check({ path: "/x", authority, rawHeaders })).toMatchObject({
          allowed: false,
          status: 400,
        });
      }
      // A second host beside :authority could route the request elsewhere.
      expect(
        await check({
          path: "/x",
          authority: "stripe.pkg.example",
          headers: [["host", "evil.example"]],
          rawHeaders,
        }),
      ).toMatchObject({ allowed: false, status: 400 });
    }
  });
});

describe("OK answers served from their serialized bytes", () => {
  it("are right for every set of removed headers, also past the number kept per key", async () => {
    const { keys, check } = await start();
    const { token, key } = keys.issue({ scopes: ["admin"] });
    for (let i = 0; i < ANSWERS_PER_KEY + 4; i++) {
      for (let repeat = 0; repeat < 2; repeat++) {
        const outcome = await check({
          path: "/admin/x",
          headers: [
            ["authorization", `Bearer ${token}`],
            [`x-latchkey-forged-${i}`, "1"],
          ],
        });
        expect(outcome.headers["x-latchkey-key-id"]).toBe(key.id);
        expect(outcome.headersToRemove).toEqual(["authorization", `x-latchkey-forged-${i}`]);
      }
    }
    // A caller's header name may hold a comma: one name is never read as two, nor two as one (a
    // fresh key, whose answers are still cached).
    const fresh = keys.issue({ scopes: ["admin"] });
    const oneName = await check({
      path: "/admin/x",
      headers: [
        ["authorization", `Bearer ${fresh.token}`],
        ["x-latchkey-a,x-latchkey-b", "1"],
      ],
    });
    expect(oneName.headersToRemove).toEqual(["authorization", "x-latchkey-a,x-latchkey-b"]);
    const twoNames = await check({
      path: "/admin/x",
      headers: [
        ["authorization", `Bearer ${fresh.token}`],
        ["x-latchkey-a", "1"],
        ["x-latchkey-b", "1"],
      ],
    });
    expect(twoNames.headersToRemove).toEqual(["authorization", "x-latchkey-a", "x-latchkey-b"]);
    // Another key never gets the first one's answer.
    const other = keys.issue({ scopes: ["admin"] });
    const outcome = await check({ path: "/admin/x", headers: [["authorization", `Bearer ${other.token}`]] });
    expect(outcome.headers["x-latchkey-key-id"]).toBe(other.key.id);
  });
});

describe("callerAddress", () => {
  it("reads grpc-js peer strings, and nothing else", () => {
    expect(callerAddress("127.0.0.1:51234")).toBe("127.0.0.1");
    expect(callerAddress("::1:51234")).toBe("::1");
    expect(callerAddress("::ffff:10.1.2.3:443")).toBe("::ffff:10.1.2.3");
    expect(callerAddress("unknown")).toBe("");
    expect(callerAddress("/run/envoy.sock")).toBe("");
  });
});
