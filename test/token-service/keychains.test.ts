// Keychains through the real token-service on PostgreSQL: the three rules of ResolveSecrets (only
// public packages; double opt-in, each half missing in turn; pinned version and digest), each
// refusal's audit row, the keychain's secret as a key of kind keychain, revocation, and team
// isolation.
import { toJsonString } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { ListKeychainsResponseSchema, VerifyResult, WithheldReason } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditRows, digestOf, makeKeychain, masterKey, registerPackage } from "./keychain-fixtures.js";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

const STRIPE = "sk_live_51H-example-stripe-secret-value-0123456789";
const SENDGRID = "SG.example-sendgrid-secret-value-0123456789";
const PACKAGE = "@user/package";
const V1 = "v-20250101";
const V1_SHA = digestOf("@user/package v-20250101 contents");

let service: TestService;
let teamId: string;
let admin: string;
let other: { teamId: string; adminKey: string };

beforeAll(async () => {
  service = await startTestService({ settings: { keychainMasterKey: masterKey("2026-12") } });
  const team = await service.teamWithAdmin("keychain-owners");
  teamId = team.teamId;
  admin = team.adminKey;
  other = await service.teamWithAdmin("keychain-others");
  await registerPackage(service, {
    teamId,
    name: PACKAGE,
    version: V1,
    sha256: V1_SHA,
    required: ["STRIPE_SECRET_KEY", "SENDGRID_API_KEY"],
  });
});
afterAll(() => service?.close());

/** A keychain holding both secrets, granting `names` of PACKAGE@V1 (no grant when `names` is undefined). */
async function keychainGranting(names: string[] | undefined, label: string) {
  const keychain = await makeKeychain(service, label, {
    teamId,
    admin,
    secrets: { STRIPE_SECRET_KEY: STRIPE, SENDGRID_API_KEY: SENDGRID, UNRELATED: "never-shared-0123" },
  });
  if (names !== undefined) {
    await service
      .keychains(admin)
      .grantPackage({ keychainId: keychain.id, packageName: PACKAGE, version: V1, sha256: V1_SHA, names });
  }
  return keychain;
}

const resolve = (secret: string, fields: { packageName?: string; version?: string; sha256?: string } = {}) =>
  service.keychains(secret).resolveSecrets({ packageName: PACKAGE, version: V1, sha256: V1_SHA, ...fields });

describe("double opt-in", () => {
  it("releases exactly the names both the package declares and the grant names", async () => {
    const keychain = await keychainGranting(["STRIPE_SECRET_KEY", "SENDGRID_API_KEY"], "both");
    const resolved = await resolve(keychain.secret);
    expect(resolved.keychainId).toBe(keychain.id);
    expect(resolved.secrets).toEqual({ STRIPE_SECRET_KEY: STRIPE, SENDGRID_API_KEY: SENDGRID });
    expect(resolved.withheld).toEqual([]);
    const [row] = (await auditRows(service, "keychain.resolve")).filter(
      (r) => r.details.keychainId === keychain.id,
    );
    expect(row?.details).toMatchObject({
      package: PACKAGE,
      version: V1,
      released: ["SENDGRID_API_KEY", "STRIPE_SECRET_KEY"],
    });
    expect(row?.actor).toBe(keychain.keyId);
  });

  it("withholds a name the package declares but the grant does not name", async () => {
    const keychain = await keychainGranting(["STRIPE_SECRET_KEY"], "grant-half-missing");
    const resolved = await resolve(keychain.secret);
    expect(resolved.secrets).toEqual({ STRIPE_SECRET_KEY: STRIPE });
    expect(resolved.withheld).toEqual([
      expect.objectContaining({ name: "SENDGRID_API_KEY", reason: WithheldReason.NOT_GRANTED }),
    ]);
  });

  it("never releases a name the grant names but the package does not declare", async () => {
    const keychain = await keychainGranting(["STRIPE_SECRET_KEY", "UNRELATED"], "declaration-half-missing");
    const granted = await service.keychains(admin).listGrants({ keychainId: keychain.id });
    expect(granted.grants[0]?.names).toEqual(["STRIPE_SECRET_KEY", "UNRELATED"]);
    const resolved = await resolve(keychain.secret);
    expect(Object.keys(resolved.secrets)).toEqual(["STRIPE_SECRET_KEY"]);
    expect(JSON.stringify(resolved)).not.toContain("never-shared");
    expect(resolved.withheld).toContainEqual(
      expect.objectContaining({ name: "UNRELATED", reason: WithheldReason.NOT_DECLARED }),
    );
  });

  it("tells the admin at grant time which granted names the package does not declare", async () => {
    const keychain = await keychainGranting(undefined, "undeclared-at-grant");
    const granted = await service.keychains(admin).grantPackage({
      keychainId: keychain.id,
      packageName: PACKAGE,
      version: V1,
      sha256: V1_SHA,
      names: ["UNRELATED", "STRIPE_SECRET_KEY"],
    });
    expect(granted.undeclaredNames).toEqual(["UNRELATED"]);
  });

  it("refuses a package the keychain grants nothing, with an audit row", async () => {
    const keychain = await keychainGranting(undefined, "no-grant");
    const error = await rpcError(resolve(keychain.secret));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/^not_granted: /);
    const rows = (await auditRows(service, "keychain.resolve.refused")).filter(
      (r) => r.details.keychainId === keychain.id,
    );
    expect(rows.map((r) => r.details.reason)).toEqual(["not_granted"]);
  });

  it("withholds a name both sides agree on that the keychain does not store", async () => {
    const keychain = await keychainGranting(["STRIPE_SECRET_KEY", "SENDGRID_API_KEY"], "not-stored");
    await service.keychains(admin).deleteSecret({ keychainId: keychain.id, name: "SENDGRID_API_KEY" });
    const resolved = await resolve(keychain.secret);
    expect(resolved.secrets).toEqual({ STRIPE_SECRET_KEY: STRIPE });
    expect(resolved.withheld).toEqual([
      expect.objectContaining({ name: "SENDGRID_API_KEY", reason: WithheldReason.NOT_STORED }),
    ]);
  });
});

describe("stored values", () => {
  it("round-trip at the largest size and in any UTF-8", async () => {
    const largest = `${"x".repeat(16_384 - 8)}ünï✓`;
    expect(Buffer.byteLength(largest)).toBe(16_384);
    const keychain = await keychainGranting(["STRIPE_SECRET_KEY", "SENDGRID_API_KEY"], "sizes");
    await service
      .keychains(admin)
      .putSecret({ keychainId: keychain.id, name: "STRIPE_SECRET_KEY", value: largest });
    await service
      .keychains(admin)
      .putSecret({ keychainId: keychain.id, name: "SENDGRID_API_KEY", value: "😀 \n\t \" ' $" });
    const resolved = await resolve(keychain.secret);
    expect(resolved.secrets.STRIPE_SECRET_KEY).toBe(largest);
    expect(resolved.secrets.SENDGRID_API_KEY).toBe("😀 \n\t \" ' $");
  });
});

describe("pinned version and digest", () => {
  it("refuses a changed digest with a clear error and an audit row naming both digests", async () => {
    const keychain = await keychainGranting(["STRIPE_SECRET_KEY"], "digest-change");
    const changed = digestOf("@user/package v-20250101 contents, overwritten by a hijacker");
    const error = await rpcError(resolve(keychain.secret, { sha256: changed }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/^digest_mismatch: /);
    expect(error.rawMessage).toContain(V1_SHA);
    expect(error.rawMessage).toContain(changed);
    expect(error.rawMessage).not.toContain(STRIPE);
    const [row] = (await auditRows(service, "keychain.resolve.refused")).filter(
      (r) => r.details.keychainId === keychain.id,
    );
    expect(row?.details).toMatchObject({ reason: "digest_mismatch", sha256: changed, grantSha256: V1_SHA });
    // The image-digest spelling of the pinned digest is the same digest.
    expect((await resolve(keychain.secret, { sha256: `sha256:${V1_SHA.toUpperCase()}` })).secrets).toEqual({
      STRIPE_SECRET_KEY: STRIPE,
    });
  });

  it("refuses another version, even one registered with the same names", async () => {
    const v2Sha = digestOf("v2");
    await registerPackage(service, {
      teamId,
      name: PACKAGE,
      version: "v-20250202",
      sha256: v2Sha,
      required: ["STRIPE_SECRET_KEY"],
    });
    const keychain = await keychainGranting(["STRIPE_SECRET_KEY"], "version-change");
    const error = await rpcError(resolve(keychain.secret, { version: "v-20250202", sha256: v2Sha }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/^version_mismatch: .*pins version v-20250101/);
    // Granting the new version moves the pin: the old one stops working.
    await service.keychains(admin).grantPackage({
      keychainId: keychain.id,
      packageName: PACKAGE,
      version: "v-20250202",
      sha256: v2Sha,
      names: ["STRIPE_SECRET_KEY"],
    });
    expect((await resolve(keychain.secret, { version: "v-20250202", sha256: v2Sha })).secrets).toEqual({
      STRIPE_SECRET_KEY: STRIPE,
    });
    expect((await rpcError(resolve(keychain.secret))).rawMessage).toMatch(/^version_mismatch: /);
  });

  it("never lets a version's contents change: a new digest is a new version", async () => {
    const error = await rpcError(
      registerPackage(service, {
        teamId,
        name: PACKAGE,
        version: V1,
        sha256: digestOf("other"),
        required: [],
      }),
    );
    expect(error.code).toBe(Code.AlreadyExists);
  });

  it("refuses a grant pinned to a digest the registry does not hold", async () => {
    const keychain = await keychainGranting(undefined, "bad-pin");
    const error = await rpcError(
      service.keychains(admin).grantPackage({
        keychainId: keychain.id,
        packageName: PACKAGE,
        version: V1,
        sha256: digestOf("not it"),
        names: ["STRIPE_SECRET_KEY"],
      }),
    );
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toMatch(/^sha256: /);
  });
});

describe("only public packages", () => {
  it("refuses to grant a private package", async () => {
    const sha = digestOf("private one");
    await registerPackage(service, {
      teamId,
      name: "@user/private-tool",
      version: "1.0.0",
      sha256: sha,
      required: ["STRIPE_SECRET_KEY"],
      public: false,
    });
    const keychain = await keychainGranting(undefined, "private-grant");
    const error = await rpcError(
      service.keychains(admin).grantPackage({
        keychainId: keychain.id,
        packageName: "@user/private-tool",
        version: "1.0.0",
        sha256: sha,
        names: ["STRIPE_SECRET_KEY"],
      }),
    );
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toContain("only public packages");
    // Another team's private version does not even show that it exists.
    const hidden = await rpcError(
      service.keychains(other.adminKey).grantPackage({
        keychainId: (
          await makeKeychain(service, "other-private", { teamId: other.teamId, admin: other.adminKey })
        ).id,
        packageName: "@user/private-tool",
        version: "1.0.0",
        sha256: sha,
        names: ["STRIPE_SECRET_KEY"],
      }),
    );
    expect(hidden.code).toBe(Code.NotFound);
  });

  it("stops releasing to a granted package once its version is made private, with an audit row", async () => {
    const sha = digestOf("goes private");
    const fields = {
      teamId,
      name: "@user/goes-private",
      version: "2.0.0",
      sha256: sha,
      required: ["STRIPE_SECRET_KEY"],
    };
    await registerPackage(service, fields);
    const keychain = await keychainGranting(undefined, "made-private");
    await service.keychains(admin).grantPackage({
      keychainId: keychain.id,
      packageName: fields.name,
      version: fields.version,
      sha256: sha,
      names: ["STRIPE_SECRET_KEY"],
    });
    const presented = { packageName: fields.name, version: fields.version, sha256: sha };
    expect((await resolve(keychain.secret, presented)).secrets).toEqual({ STRIPE_SECRET_KEY: STRIPE });
    await registerPackage(service, { ...fields, public: false });
    const error = await rpcError(resolve(keychain.secret, presented));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/^private: /);
    const reasons = (await auditRows(service, "keychain.resolve.refused"))
      .filter((r) => r.details.keychainId === keychain.id)
      .map((r) => r.details.reason);
    expect(reasons).toEqual(["private"]);
  });
});

describe("the keychain secret is a key of kind keychain", () => {
  it("verifies with its keychain id and no scopes, and is no admin key", async () => {
    const keychain = await keychainGranting(undefined, "as-key");
    const verified = await service.tokens(null).verify({ token: keychain.secret });
    expect(verified.result).toBe(VerifyResult.VALID);
    expect(verified.key).toMatchObject({ id: keychain.keyId, keychainId: keychain.id, scopes: [], teamId });
    const asAdmin = await rpcError(service.keychains(keychain.secret).listKeychains({ teamId }));
    expect(asAdmin.code).toBe(Code.PermissionDenied);
  });

  it("cannot be rotated or updated through TokenService, by anyone", async () => {
    const keychain = await keychainGranting(undefined, "not-a-normal-key");
    for (const call of [
      () => service.tokens().rotate({ keyId: keychain.keyId }),
      () => service.tokens().update({ keyId: keychain.keyId, scopes: { values: ["admin"] } }),
      () => service.tokens(admin).update({ keyId: keychain.keyId, enabled: false }),
    ]) {
      const error = await rpcError(call());
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.rawMessage).toContain(`keychain ${keychain.id}`);
    }
  });

  it("is shown once: ListKeychains carries its hint, never the secret", async () => {
    const keychain = await keychainGranting(undefined, "listed");
    const listed = await service.keychains(admin).listKeychains({ teamId });
    const entry = listed.keychains.find((each) => each.id === keychain.id);
    expect(entry).toMatchObject({ keyId: keychain.keyId, secretCount: 3, masterKeyId: "2026-12" });
    expect(toJsonString(ListKeychainsResponseSchema, listed)).not.toContain(keychain.secret);
  });
});

describe("revocation", () => {
  it("stops the secret, deletes the stored secrets, and goes through the outbox", async () => {
    const keychain = await keychainGranting(["STRIPE_SECRET_KEY"], "revoked");
    const revoked = await service
      .keychains(admin)
      .revokeKeychain({ keychainId: keychain.id, reason: "leaked" });
    expect(revoked.keychain?.revokeTime).toBeDefined();
    expect(revoked.keychain?.secretCount).toBe(0);
    expect((await rpcError(resolve(keychain.secret))).code).toBe(Code.Unauthenticated);
    expect((await service.tokens(null).verify({ token: keychain.secret })).result).toBe(VerifyResult.REVOKED);
    const { rows } = await service.sql.query(
      "select event_type from key_event_outbox where key_id = $1 order by id",
      [keychain.keyId],
    );
    expect(rows.map((row) => row.event_type)).toContain(1); // KEY_EVENT_TYPE_REVOKED
    const refused = await rpcError(
      service.keychains(admin).putSecret({ keychainId: keychain.id, name: "STRIPE_SECRET_KEY", value: "x" }),
    );
    expect(refused.code).toBe(Code.FailedPrecondition);
    // Again: a no-op, still answered with the keychain.
    expect((await service.keychains(admin).revokeKeychain({ keychainId: keychain.id })).keychain?.id).toBe(
      keychain.id,
    );
  });
});

describe("team isolation", () => {
  it("hides a team's keychains from another team's admin, and lets root see them", async () => {
    const keychain = await keychainGranting(["STRIPE_SECRET_KEY"], "isolated");
    const foreign = service.keychains(other.adminKey);
    for (const call of [
      () => foreign.putSecret({ keychainId: keychain.id, name: "STRIPE_SECRET_KEY", value: "overwrite" }),
      () => foreign.listSecretNames({ keychainId: keychain.id }),
      () => foreign.deleteSecret({ keychainId: keychain.id, name: "STRIPE_SECRET_KEY" }),
      () => foreign.listGrants({ keychainId: keychain.id }),
      () => foreign.revokeGrant({ keychainId: keychain.id, packageName: PACKAGE }),
      () => foreign.revokeKeychain({ keychainId: keychain.id }),
      () =>
        foreign.grantPackage({
          keychainId: keychain.id,
          packageName: PACKAGE,
          version: V1,
          sha256: V1_SHA,
          names: ["STRIPE_SECRET_KEY"],
        }),
    ]) {
      expect((await rpcError(call())).code).toBe(Code.NotFound);
    }
    expect((await rpcError(foreign.listKeychains({ teamId }))).code).toBe(Code.PermissionDenied);
    expect((await rpcError(foreign.createKeychain({ teamId, name: "intruder" }))).code).toBe(
      Code.PermissionDenied,
    );
    const own = await foreign.listKeychains({});
    expect(own.keychains.map((each) => each.id)).not.toContain(keychain.id);
    // The other team's admin cannot register versions of this team's package either.
    const claimed = await rpcError(
      registerPackage(
        service,
        {
          teamId: other.teamId,
          name: PACKAGE,
          version: "v-evil",
          sha256: digestOf("evil"),
          required: ["STRIPE_SECRET_KEY"],
        },
        other.adminKey,
      ),
    );
    expect(claimed.code).toBe(Code.PermissionDenied);
    // Nothing changed, and root sees it.
    expect((await resolve(keychain.secret)).secrets).toEqual({ STRIPE_SECRET_KEY: STRIPE });
    expect((await service.keychains().listSecretNames({ keychainId: keychain.id })).secrets).toHaveLength(3);
  });

  it("a keychain secret resolves only its own keychain's secrets", async () => {
    const mine = await keychainGranting(["STRIPE_SECRET_KEY"], "mine");
    const theirs = await makeKeychain(service, "theirs", {
      teamId: other.teamId,
      admin: other.adminKey,
      secrets: { STRIPE_SECRET_KEY: "sk_live_theirs-0123456789abcdef" },
    });
    await service.keychains(other.adminKey).grantPackage({
      keychainId: theirs.id,
      packageName: PACKAGE,
      version: V1,
      sha256: V1_SHA,
      names: ["STRIPE_SECRET_KEY"],
    });
    expect((await resolve(mine.secret)).secrets.STRIPE_SECRET_KEY).toBe(STRIPE);
    expect((await resolve(theirs.secret)).secrets.STRIPE_SECRET_KEY).toBe("sk_live_theirs-0123456789abcdef");
  });
});

describe("every call is audited, never with a value", () => {
  it("records puts, grants, lists and resolves by name", async () => {
    const keychain = await keychainGranting(["STRIPE_SECRET_KEY"], "audited");
    await resolve(keychain.secret);
    await service.keychains(admin).listSecretNames({ keychainId: keychain.id });
    const { rows } = await service.sql.query(
      "select action, details from audit_log where details->>'keychainId' = $1 order by id",
      [keychain.id],
    );
    expect(rows.map((row) => row.action)).toEqual([
      "keychain.create",
      "keychain.secret.put",
      "keychain.secret.put",
      "keychain.secret.put",
      "keychain.grant",
      "keychain.resolve",
      "keychain.secret.list",
    ]);
    const everything = JSON.stringify((await service.sql.query("select * from audit_log")).rows);
    for (const value of [STRIPE, SENDGRID, "never-shared-0123", keychain.secret]) {
      expect(everything).not.toContain(value);
    }
  });
});
