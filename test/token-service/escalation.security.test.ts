// "An admin key can never obtain or hand out more than it holds", on every
// write RPC. Team A's admin key holds [admin]; root gives team A a stronger key
// holding [admin, billing:refund]. Reductions (revoke, disable, removing
// scopes) of the stronger key are allowed, so a team can kill its own leaked
// key; anything that gives power or a token is not. A key the root key
// disabled is re-enabled by the root key only.
import { Code } from "@connectrpc/connect";
import { VerifyResult } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

let service: TestService;
let team: { teamId: string; adminKey: string; adminKeyId: string };
beforeAll(async () => {
  service = await startTestService();
  team = await service.teamWithAdmin("escalation");
});
afterAll(() => service?.close());

const asRoot = () => service.tokens();
const asAdmin = () => service.tokens(team.adminKey);

/** A key of the team issued by root, holding `scopes`. */
async function rootIssued(name: string, scopes: string[]) {
  const { key, token } = await asRoot().issue({ teamId: team.teamId, name, scopes });
  return { keyId: key?.id ?? "", token };
}
const stronger = (name: string) => rootIssued(name, ["admin", "billing:refund"]);
const keyOf = async (keyId: string) => (await asRoot().get({ keyId })).key;
const teamKeyIds = async () => (await asRoot().list({ teamId: team.teamId })).keys.map((k) => k.id);

describe("Rotate by an admin key", () => {
  it("is PERMISSION_DENIED for a key holding scopes the admin key lacks, with no new key and the old one untouched", async () => {
    const strong = await stronger("refunds-admin");
    const before = await teamKeyIds();
    const error = await rpcError(asAdmin().rotate({ keyId: strong.keyId, gracePeriod: { seconds: 60n } }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toContain("key_id");
    expect(error.rawMessage).toContain("billing:refund");
    expect(await teamKeyIds()).toEqual(before);
    expect((await keyOf(strong.keyId))?.expireTime).toBeUndefined();
    expect((await service.tokens(null).verify({ token: strong.token })).result).toBe(VerifyResult.VALID);
  });

  it("rotates a key whose scopes it holds, including itself", async () => {
    const weaker = await rootIssued("reader", ["read", "write"]);
    expect((await asAdmin().rotate({ keyId: weaker.keyId })).token).not.toBe("");
    const self = await service.teamWithAdmin("self-rotating");
    const rotated = await service.tokens(self.adminKey).rotate({ keyId: self.adminKeyId });
    expect(rotated.key?.scopes).toEqual(["admin"]);
  });

  it("keeps a key disabled by root out of the admin key's reach after rotation", async () => {
    const paused = await rootIssued("paused-by-root", ["read"]);
    await asRoot().update({ keyId: paused.keyId, enabled: false });
    const rotated = await asAdmin().rotate({ keyId: paused.keyId });
    expect(rotated.key?.enabled).toBe(false);
    const error = await rpcError(asAdmin().update({ keyId: rotated.key?.id ?? "", enabled: true }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect((await keyOf(rotated.key?.id ?? ""))?.enabled).toBe(false);
  });
});

describe("Update by an admin key of a key holding scopes it lacks", () => {
  it("cannot rename it or change its metadata", async () => {
    const strong = await stronger("refunds-named");
    const rename = await rpcError(asAdmin().update({ keyId: strong.keyId, name: "mine-now" }));
    expect(rename.code).toBe(Code.PermissionDenied);
    expect(rename.rawMessage).toMatch(/^name: .*billing:refund/);
    const metadata = await rpcError(
      asAdmin().update({ keyId: strong.keyId, metadata: { entries: { owner: "team-a" } } }),
    );
    expect(metadata.code).toBe(Code.PermissionDenied);
    expect(metadata.rawMessage).toMatch(/^metadata\.entries: .*billing:refund/);
    expect(await keyOf(strong.keyId)).toMatchObject({ name: "refunds-named", metadata: {} });
  });

  it("cannot add a scope to it, even one the admin key holds", async () => {
    const refunds = await rootIssued("refunds-only", ["billing:refund"]);
    const error = await rpcError(
      asAdmin().update({ keyId: refunds.keyId, scopes: { values: ["billing:refund", "write"] } }),
    );
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/^scopes\.values: .*billing:refund/);
    expect((await keyOf(refunds.keyId))?.scopes).toEqual(["billing:refund"]);
  });

  it("can remove scopes from it, even when what is left still exceeds the admin key", async () => {
    const strong = await stronger("refunds-trimmed");
    const { key } = await asAdmin().update({
      keyId: strong.keyId,
      scopes: { values: ["write", "billing:refund"] },
    });
    expect(key?.scopes).toEqual(["write", "billing:refund"]);
  });

  it("can disable and revoke it, but not re-enable it", async () => {
    const strong = await stronger("refunds-leaked");
    await asAdmin().update({ keyId: strong.keyId, enabled: false });
    expect((await service.tokens(null).verify({ token: strong.token })).result).toBe(VerifyResult.DISABLED);
    const enable = await rpcError(asAdmin().update({ keyId: strong.keyId, enabled: true }));
    expect(enable.code).toBe(Code.PermissionDenied);
    expect(enable.rawMessage).toMatch(/^enabled: .*billing:refund/);
    expect((await keyOf(strong.keyId))?.enabled).toBe(false);
    await asAdmin().revoke({ keyId: strong.keyId, reason: "leaked" });
    expect((await service.tokens(null).verify({ token: strong.token })).result).toBe(VerifyResult.REVOKED);
  });

  it("can re-enable it together with removing what the admin key lacks", async () => {
    const strong = await stronger("refunds-reduced");
    await asAdmin().update({ keyId: strong.keyId, enabled: false });
    const { key } = await asAdmin().update({
      keyId: strong.keyId,
      scopes: { values: ["read"] },
      enabled: true,
    });
    expect(key).toMatchObject({ scopes: ["read"], enabled: true });
  });
});

describe("Re-enabling a disabled key", () => {
  it("of a key root disabled is PERMISSION_DENIED for an admin key, even within its scopes; root may", async () => {
    const reader = await rootIssued("disabled-by-root", ["read"]);
    await asRoot().update({ keyId: reader.keyId, enabled: false });
    const error = await rpcError(asAdmin().update({ keyId: reader.keyId, enabled: true }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/^enabled: .*root key/);
    expect((await keyOf(reader.keyId))?.enabled).toBe(false);
    expect((await asRoot().update({ keyId: reader.keyId, enabled: true })).key?.enabled).toBe(true);
  });

  it("of a key an admin key disabled is allowed to an admin key holding its scopes", async () => {
    const reader = await rootIssued("disabled-by-admin", ["read"]);
    await asAdmin().update({ keyId: reader.keyId, enabled: false });
    expect((await asAdmin().update({ keyId: reader.keyId, enabled: true })).key?.enabled).toBe(true);
  });
});

describe("an admin key acting on itself", () => {
  it("cannot add a scope it lacks to itself", async () => {
    const error = await rpcError(
      asAdmin().update({ keyId: team.adminKeyId, scopes: { values: ["admin", "billing:refund"] } }),
    );
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toContain("billing:refund");
    expect((await keyOf(team.adminKeyId))?.scopes).toEqual(["admin"]);
  });
});
