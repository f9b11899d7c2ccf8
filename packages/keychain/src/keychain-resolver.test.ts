// The resolver's cache against KeychainService in memory (createRouterTransport) and the
// in-process key event bus: what is cached, for how long, what drops it, and what is never cached.
// The same behaviour against the real token-service, PostgreSQL and NATS is in
// test/keychain/keychain-sdk.e2e.test.ts.
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { createMemoryKeyEventBus, type KeyEventBus } from "@latchkey/events";
import { KeychainService, KeyEventSchema, KeyEventType, WithheldReason } from "@latchkey/proto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createKeychainContext } from "./keychain-context.js";
import { KeychainError } from "./keychain-error.js";
import { createKeychainResolver, type KeychainResolver } from "./keychain-resolver.js";

const PKG = { name: "@user/package", version: "v-20250101", sha256: "a".repeat(64) };
const SECRET = "lk_live_keychain-secret-for-the-unit-test";

/** A KeychainService whose ResolveSecrets answers from `answer` and counts its calls. */
function fakeService(
  answer: (authorization: string | null) => Promise<Record<string, string>> | Record<string, string>,
) {
  const calls: string[] = [];
  const transport = createRouterTransport(({ service }) => {
    service(KeychainService, {
      async resolveSecrets(request, context) {
        const authorization = context.requestHeader.get("authorization");
        calls.push(`${authorization} ${request.packageName}@${request.version}#${request.sha256}`);
        return {
          keychainId: "kc_0123456789012345678901",
          secrets: await answer(authorization),
          withheld: [{ name: "SENDGRID_API_KEY", reason: WithheldReason.NOT_GRANTED }],
        };
      },
    });
  });
  return { transport, calls };
}

function event(secret: string, type: KeyEventType) {
  return create(KeyEventSchema, {
    id: 1n,
    type,
    keyId: "key_0123456789012345678901",
    teamId: "team_0123456789012345678901",
    tokenHash: createHash("sha256").update(secret).digest(),
  });
}

let resolver: KeychainResolver | undefined;
let bus: KeyEventBus | undefined;
afterEach(async () => {
  await resolver?.close();
  await bus?.close();
  resolver = undefined;
  bus = undefined;
});

describe("the resolver's cache", () => {
  it("asks once for repeated invocations and answers the seed's context.keychain.key(name)", async () => {
    const { transport, calls } = fakeService(() => ({ STRIPE_SECRET_KEY: "sk_1" }));
    resolver = createKeychainResolver({ transport, cacheTtlMs: 60_000 });
    for (let i = 0; i < 3; i++) {
      const context = await createKeychainContext({ resolver, secret: SECRET, package: PKG });
      expect(context.keychain.key("STRIPE_SECRET_KEY")).toBe("sk_1");
    }
    expect(calls).toEqual([`Bearer ${SECRET} @user/package@v-20250101#${"a".repeat(64)}`]);
    expect(resolver.stats()).toMatchObject({ hits: 2, misses: 1, entries: 1 });
  });

  it("keeps answers apart per keychain secret and per package version and digest", async () => {
    const { transport, calls } = fakeService((authorization) => ({
      STRIPE_SECRET_KEY: `for ${authorization}`,
    }));
    resolver = createKeychainResolver({ transport });
    await resolver.resolve(SECRET, PKG);
    await resolver.resolve(`${SECRET}-other`, PKG);
    await resolver.resolve(SECRET, { ...PKG, version: "v2" });
    await resolver.resolve(SECRET, { ...PKG, sha256: "b".repeat(64) });
    await resolver.resolve(SECRET, PKG);
    expect(calls).toHaveLength(4);
  });

  it("expires answers after cacheTtlMs, and never caches with 0", async () => {
    const { transport, calls } = fakeService(() => ({ A: "1" }));
    resolver = createKeychainResolver({ transport, cacheTtlMs: 100 });
    await resolver.resolve(SECRET, PKG);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect((await resolver.resolve(SECRET, PKG)).cached).toBe(false);
    expect(calls).toHaveLength(2);
    const none = fakeService(() => ({ A: "1" }));
    const uncached = createKeychainResolver({ transport: none.transport, cacheTtlMs: 0 });
    await uncached.resolve(SECRET, PKG);
    await uncached.resolve(SECRET, PKG);
    expect(none.calls).toHaveLength(2);
    await uncached.close();
  });

  it("is bounded by cacheMaxEntries", async () => {
    const { transport } = fakeService(() => ({ A: "1" }));
    resolver = createKeychainResolver({ transport, cacheMaxEntries: 2 });
    for (let i = 0; i < 5; i++) await resolver.resolve(`${SECRET}-${i}`, PKG);
    expect(resolver.stats().entries).toBe(2);
  });

  it("refuses a TTL beyond 60 s and bad bounds", () => {
    const { transport } = fakeService(() => ({}));
    expect(() => createKeychainResolver({ transport, cacheTtlMs: 60_001 })).toThrow(RangeError);
    expect(() => createKeychainResolver({ transport, cacheMaxEntries: 0 })).toThrow(RangeError);
    expect(() => createKeychainResolver({})).toThrow(/tokenService/);
    expect(() => createKeychainResolver({ tokenService: "file:///etc/passwd" })).toThrow(RangeError);
  });

  it("shares one call between concurrent invocations", async () => {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { transport, calls } = fakeService(async () => {
      await gate;
      return { A: "1" };
    });
    resolver = createKeychainResolver({ transport });
    const all = Promise.all([1, 2, 3].map(() => resolver?.resolve(SECRET, PKG)));
    release();
    expect((await all).map((outcome) => outcome?.resolved.secrets.A)).toEqual(["1", "1", "1"]);
    expect(calls).toHaveLength(1);
  });
});

describe("key events", () => {
  it("drop a keychain's cached secrets on its REVOKED event, and only its own", async () => {
    bus = createMemoryKeyEventBus();
    const { transport, calls } = fakeService(() => ({ A: "1" }));
    resolver = createKeychainResolver({ transport, events: bus });
    await vi.waitFor(() => expect(resolver?.stats().cacheLive).toBe(true));
    await resolver.resolve(SECRET, PKG);
    await resolver.resolve("another-keychain-secret", PKG);
    await bus.publish(event(SECRET, KeyEventType.REVOKED), "1");
    await vi.waitFor(() => expect(resolver?.stats().dropped).toBe(1));
    expect((await resolver.resolve(SECRET, PKG)).cached).toBe(false);
    expect((await resolver.resolve("another-keychain-secret", PKG)).cached).toBe(true);
    expect(calls).toHaveLength(3);
  });

  it("drop them on KEYCHAIN_CHANGED (a secret or grant changed)", async () => {
    bus = createMemoryKeyEventBus();
    let value = "old";
    const { transport } = fakeService(() => ({ A: value }));
    resolver = createKeychainResolver({ transport, events: bus });
    await vi.waitFor(() => expect(resolver?.stats().cacheLive).toBe(true));
    expect((await resolver.resolve(SECRET, PKG)).resolved.secrets.A).toBe("old");
    value = "new";
    await bus.publish(event(SECRET, KeyEventType.KEYCHAIN_CHANGED), "2");
    await vi.waitFor(() => expect(resolver?.stats().dropped).toBe(1));
    expect((await resolver.resolve(SECRET, PKG)).resolved.secrets.A).toBe("new");
  });

  it("never cache an answer whose call was out when the keychain's event arrived", async () => {
    bus = createMemoryKeyEventBus();
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { transport, calls } = fakeService(async () => {
      await gate;
      return { A: "stale" };
    });
    resolver = createKeychainResolver({ transport, events: bus });
    await vi.waitFor(() => expect(resolver?.stats().cacheLive).toBe(true));
    const first = resolver.resolve(SECRET, PKG);
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    await bus.publish(event(SECRET, KeyEventType.REVOKED), "3");
    // The event is delivered before the gate opens: wait until the bus has handed it over.
    await new Promise((resolve) => setImmediate(resolve));
    release();
    await first;
    expect(resolver.stats().entries).toBe(0);
  });

  it("serve nothing from the cache until the subscription is up", async () => {
    const never: KeyEventBus = {
      ...createMemoryKeyEventBus(),
      subscribe: () => new Promise(() => {}),
    };
    const { transport, calls } = fakeService(() => ({ A: "1" }));
    resolver = createKeychainResolver({ transport, events: never });
    await resolver.resolve(SECRET, PKG);
    await resolver.resolve(SECRET, PKG);
    expect(calls).toHaveLength(2);
    expect(resolver.stats().cacheLive).toBe(false);
    resolver = undefined; // its subscription never opens; close() would wait for it
  });
});

describe("failures", () => {
  it.each([
    [Code.PermissionDenied, "digest_mismatch: the grant pins …", "refused", "digest_mismatch"],
    [Code.PermissionDenied, "private: not public", "refused", "private"],
    [Code.Unauthenticated, "not a keychain secret", "unauthenticated", undefined],
    [Code.DataLoss, "failed authentication", "corrupt", undefined],
    [Code.FailedPrecondition, "keychains are off", "unavailable", undefined],
    [Code.Unavailable, "connection refused", "unavailable", undefined],
  ])("maps %s to a KeychainError, and caches no failure", async (code, message, expected, reason) => {
    const { transport, calls } = fakeService(() => {
      throw new ConnectError(message, code);
    });
    resolver = createKeychainResolver({ transport });
    for (let i = 0; i < 2; i++) {
      const error = await createKeychainContext({ resolver, secret: SECRET, package: PKG }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(KeychainError);
      expect((error as KeychainError).code).toBe(expected);
      expect((error as KeychainError).reason).toBe(reason);
      expect((error as KeychainError).message).not.toContain(SECRET);
    }
    expect(calls).toHaveLength(2);
  });

  it("says why a name was not released, without any value", async () => {
    const { transport } = fakeService(() => ({ STRIPE_SECRET_KEY: "sk_live_value" }));
    resolver = createKeychainResolver({ transport });
    const context = await createKeychainContext({ resolver, secret: SECRET, package: PKG });
    expect(context.keychain.names).toEqual(["STRIPE_SECRET_KEY"]);
    expect(context.keychain.has("SENDGRID_API_KEY")).toBe(false);
    expect(() => context.keychain.key("SENDGRID_API_KEY")).toThrow(/does not grant it/);
    expect(() => context.keychain.key("__proto__")).toThrow(KeychainError);
    expect(() => context.keychain.key("toString")).toThrow(KeychainError);
    expect(Object.keys(context)).toEqual(["keychain"]);
    expect(JSON.stringify(context)).not.toContain(SECRET);
  });

  it("refuses an empty secret without a call", async () => {
    const { transport, calls } = fakeService(() => ({}));
    resolver = createKeychainResolver({ transport });
    await expect(resolver.resolve("", PKG)).rejects.toMatchObject({ code: "unauthenticated" });
    expect(calls).toHaveLength(0);
  });
});
