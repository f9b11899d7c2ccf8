// @latchkey/keychain against the real token-service (PostgreSQL) with key events over real NATS:
// a secret cached in the SDK is dropped when its keychain is revoked (the REVOKED event through
// the outbox), when a secret or grant changes (KEYCHAIN_CHANGED), and the refusals reach package
// code as KeychainErrors with the rule's reason.
import { createNatsKeyEventBus, type NatsKeyEventBus } from "@latchkey/events";
import {
  createKeychainContext,
  createKeychainResolver,
  KeychainError,
  type KeychainResolver,
} from "@latchkey/keychain";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { natsUrl } from "../harness/index.js";
import { digestOf, makeKeychain, masterKey, registerPackage } from "../token-service/keychain-fixtures.js";
import { startTestService, type TestService } from "../token-service/start.js";

const PKG = { name: "@user/package", version: "v-20250101", sha256: digestOf("sdk e2e package") };
const STRIPE = "sk_live_sdk-e2e-0123456789abcdef";

let service: TestService;
let bus: NatsKeyEventBus;
let resolver: KeychainResolver;
let teamId: string;

beforeAll(async () => {
  service = await startTestService({ natsUrl: natsUrl(), settings: { keychainMasterKey: masterKey("sdk") } });
  teamId = (await service.teams().createTeam({ name: "sdk-e2e" })).team?.id ?? "";
  await registerPackage(service, { teamId, ...PKG, required: ["STRIPE_SECRET_KEY"] });
  bus = createNatsKeyEventBus({ servers: natsUrl(), name: "keychain-sdk-e2e" });
  resolver = createKeychainResolver({ tokenService: service.grpcUrl, events: bus, cacheTtlMs: 60_000 });
  // Cached answers are served only once the event subscription is up.
  await vi.waitFor(() => expect(resolver.stats().cacheLive).toBe(true), { timeout: 20_000 });
});

afterAll(async () => {
  await resolver?.close();
  await bus?.close();
  await service?.close();
});

async function grantedKeychain(label: string) {
  const keychain = await makeKeychain(service, label, { teamId, secrets: { STRIPE_SECRET_KEY: STRIPE } });
  await service.keychains().grantPackage({
    keychainId: keychain.id,
    packageName: PKG.name,
    version: PKG.version,
    sha256: PKG.sha256,
    names: ["STRIPE_SECRET_KEY"],
  });
  return keychain;
}

/**
 * Waits until every key event committed so far has been published and applied by the SDK's
 * subscription: the outbox is empty, then the resolver has applied the stream's last sequence.
 */
async function settled(): Promise<void> {
  await vi.waitFor(
    async () => {
      const { rows } = await service.sql.query(
        "select count(*)::int as n from key_event_outbox where published_at is null",
      );
      expect(rows[0]?.n).toBe(0);
    },
    { timeout: 20_000 },
  );
  const last = await bus.lastSequence();
  await vi.waitFor(() => expect(resolver.stats().appliedSequence).toBeGreaterThanOrEqual(last), {
    timeout: 20_000,
  });
}

const invoke = (secret: string, pkg = PKG) => createKeychainContext({ resolver, secret, package: pkg });

describe("a secret cached in the SDK", () => {
  it("is served from the cache until its keychain is revoked, then refused", async () => {
    const keychain = await grantedKeychain("revoked-while-cached");
    await settled();
    expect((await invoke(keychain.secret)).keychain.key("STRIPE_SECRET_KEY")).toBe(STRIPE);
    const before = resolver.stats();
    expect((await invoke(keychain.secret)).keychain.key("STRIPE_SECRET_KEY")).toBe(STRIPE);
    expect(resolver.stats().hits).toBe(before.hits + 1);

    const dropped = resolver.stats().dropped;
    await service.keychains().revokeKeychain({ keychainId: keychain.id, reason: "leaked" });
    // The REVOKED event leaves through the outbox and NATS; the SDK drops the cached answer (the
    // cache's TTL is a minute: only the event can make the next call ask again).
    await settled();
    expect(resolver.stats().dropped).toBe(dropped + 1);
    const error = await invoke(keychain.secret).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeychainError);
    expect((error as KeychainError).code).toBe("unauthenticated");
  });

  it("is replaced after the keychain's secret changes, and gone after its grant is revoked", async () => {
    const keychain = await grantedKeychain("changed-while-cached");
    await settled();
    expect((await invoke(keychain.secret)).keychain.key("STRIPE_SECRET_KEY")).toBe(STRIPE);
    expect((await resolver.resolve(keychain.secret, PKG)).cached).toBe(true);
    await service
      .keychains()
      .putSecret({ keychainId: keychain.id, name: "STRIPE_SECRET_KEY", value: `${STRIPE}-rotated` });
    await settled();
    expect((await invoke(keychain.secret)).keychain.key("STRIPE_SECRET_KEY")).toBe(`${STRIPE}-rotated`);
    expect((await resolver.resolve(keychain.secret, PKG)).cached).toBe(true);

    await service.keychains().revokeGrant({ keychainId: keychain.id, packageName: PKG.name });
    await settled();
    const error = (await invoke(keychain.secret).catch((e: unknown) => e)) as KeychainError;
    expect(error.code).toBe("refused");
    expect(error.reason).toBe("not_granted");
  });

  it("is never served to another digest: the pin is part of the cache key", async () => {
    const keychain = await grantedKeychain("other-digest");
    await invoke(keychain.secret);
    const error = (await invoke(keychain.secret, { ...PKG, sha256: digestOf("tampered") }).catch(
      (e: unknown) => e,
    )) as KeychainError;
    expect(error).toBeInstanceOf(KeychainError);
    expect(error.reason).toBe("digest_mismatch");
    expect(error.message).not.toContain(STRIPE);
  });
});
