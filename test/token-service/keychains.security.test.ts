// Keychain storage under attack and under rotation, with the real token-service on PostgreSQL:
// tampered, swapped and misplaced ciphertexts and wrapped keys (GCM authentication: a clear error,
// nothing released, an audit row), the master key rotated without downtime and every data key
// re-wrapped by the `keychain-rewrap` command, no master key at all, and no plaintext in the log
// (pino output captured at debug level), the audit table or the stored rows.
import { resolve as resolvePath } from "node:path";
import { Code } from "@connectrpc/connect";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runToExit } from "../harness/run-command.js";
import { auditRows, digestOf, makeKeychain, masterKey, registerPackage } from "./keychain-fixtures.js";
import { rpcError } from "./rpc-error.js";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

const PACKAGE = "@acme/billing";
const VERSION = "1.0.0";
const SHA = digestOf("@acme/billing 1.0.0");
const STRIPE = "sk_live_security-test-stripe-0123456789abcdef";
const OPENAI = "sk-proj-security-test-openai-0123456789abcdef";
const MAIN = "services/token-service/src/main.ts";

/** A team, the package registered, and a keychain holding two secrets granted to it. */
async function setUp(service: TestService, label: string) {
  const { team } = await service.teams().createTeam({ name: label });
  const teamId = team?.id ?? "";
  await registerPackage(service, {
    teamId,
    name: `${PACKAGE}-${label}`,
    version: VERSION,
    sha256: SHA,
    required: ["STRIPE_SECRET_KEY", "OPENAI_API_KEY"],
  });
  const keychain = await makeKeychain(service, label, {
    teamId,
    secrets: { STRIPE_SECRET_KEY: STRIPE, OPENAI_API_KEY: OPENAI },
  });
  await service.keychains().grantPackage({
    keychainId: keychain.id,
    packageName: `${PACKAGE}-${label}`,
    version: VERSION,
    sha256: SHA,
    names: ["STRIPE_SECRET_KEY", "OPENAI_API_KEY"],
  });
  const resolve = () =>
    service
      .keychains(keychain.secret)
      .resolveSecrets({ packageName: `${PACKAGE}-${label}`, version: VERSION, sha256: SHA });
  return { teamId, keychain, resolve };
}

describe("tampered storage", () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService({ settings: { keychainMasterKey: masterKey("m1") } });
  });
  afterAll(() => service?.close());

  it("refuses a ciphertext with one bit flipped: DATA_LOSS, nothing released, an audit row", async () => {
    const { keychain, resolve } = await setUp(service, "flipped");
    expect((await resolve()).secrets).toEqual({ STRIPE_SECRET_KEY: STRIPE, OPENAI_API_KEY: OPENAI });
    await service.sql.query(
      `update keychain_secrets set ciphertext = overlay(ciphertext placing
         decode(lpad(to_hex(get_byte(ciphertext, 20) # 1), 2, '0'), 'hex') from 21 for 1)
       where keychain_id = $1 and name = 'STRIPE_SECRET_KEY'`,
      [keychain.id],
    );
    const error = await rpcError(resolve());
    expect(error.code).toBe(Code.DataLoss);
    expect(error.rawMessage).toContain("STRIPE_SECRET_KEY failed authentication");
    expect(error.rawMessage).toContain("nothing was released");
    expect(error.rawMessage).not.toContain(OPENAI);
    const [row] = (await auditRows(service, "keychain.resolve.failed")).filter(
      (r) => r.details.keychainId === keychain.id,
    );
    expect(row?.details).toMatchObject({ reason: "authentication", name: "STRIPE_SECRET_KEY" });
  });

  it("refuses a valid ciphertext moved under another name (bound to its name)", async () => {
    const { keychain, resolve } = await setUp(service, "swapped");
    await service.sql.query(
      `update keychain_secrets set ciphertext = (select ciphertext from keychain_secrets
         where keychain_id = $1 and name = 'OPENAI_API_KEY') where keychain_id = $1 and name = 'STRIPE_SECRET_KEY'`,
      [keychain.id],
    );
    expect((await rpcError(resolve())).code).toBe(Code.DataLoss);
  });

  it("refuses a ciphertext copied from another keychain (bound to its keychain)", async () => {
    const a = await setUp(service, "copied-from");
    const b = await setUp(service, "copied-to");
    await service.sql.query(
      `update keychain_secrets set ciphertext = (select ciphertext from keychain_secrets
         where keychain_id = $1 and name = 'STRIPE_SECRET_KEY') where keychain_id = $2 and name = 'STRIPE_SECRET_KEY'`,
      [a.keychain.id, b.keychain.id],
    );
    expect((await rpcError(b.resolve())).code).toBe(Code.DataLoss);
    expect((await a.resolve()).secrets.STRIPE_SECRET_KEY).toBe(STRIPE);
  });

  it("refuses an altered or truncated wrapped data key, and a wrapped key moved from another keychain", async () => {
    const altered = await setUp(service, "wrapped-altered");
    await service.sql.query(
      "update keychains set wrapped_data_key = substring(wrapped_data_key from 1 for 40) where id = $1",
      [altered.keychain.id],
    );
    const error = await rpcError(altered.resolve());
    expect(error.code).toBe(Code.DataLoss);
    expect(error.rawMessage).toContain("data key failed authentication");
    const source = await setUp(service, "wrapped-source");
    const moved = await setUp(service, "wrapped-moved");
    await service.sql.query(
      "update keychains set wrapped_data_key = (select wrapped_data_key from keychains where id = $1) where id = $2",
      [source.keychain.id, moved.keychain.id],
    );
    expect((await rpcError(moved.resolve())).code).toBe(Code.DataLoss);
    const failures = (await auditRows(service, "keychain.resolve.failed")).filter((r) =>
      [altered.keychain.id, moved.keychain.id].includes(r.details.keychainId as string),
    );
    expect(failures.map((r) => r.details.reason)).toEqual(["authentication", "authentication"]);
  });
});

// Each test starts the service up to three times and the re-wrap command (a tsx process, 10–20 s on a
// busy two-core machine) up to twice.
describe("master key rotation", { timeout: 240_000 }, () => {
  const first = masterKey("2026-06");
  const second = masterKey("2026-12");

  const rewrapCommand = (databaseUrl: string, keys: string) =>
    runToExit(
      process.execPath,
      ["--conditions=@latchkey/source", "--import", "tsx", MAIN, "keychain-rewrap"],
      {
        cwd: resolvePath("."),
        env: {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? "/tmp",
          DATABASE_URL: databaseUrl,
          LATCHKEY_KEYCHAIN_MASTER_KEY: keys,
          LATCHKEY_LOG_LEVEL: "warn",
        },
      },
    );

  it("keeps serving across the rotation, re-wraps every data key, then works with the new key alone", async () => {
    let service = await startTestService({ settings: { keychainMasterKey: first } });
    const databaseUrl = service.databaseUrl;
    const old = await setUp(service, "rotation-old");
    await service.close();

    // Step 1: the new key is active, the old one still unwraps.
    service = await startTestService({ databaseUrl, settings: { keychainMasterKey: `${second},${first}` } });
    const keyOf = async (id: string) =>
      (await service.sql.query("select master_key_id from keychains where id = $1", [id])).rows[0]
        ?.master_key_id;
    const resolveOld = () =>
      service
        .keychains(old.keychain.secret)
        .resolveSecrets({ packageName: `${PACKAGE}-rotation-old`, version: VERSION, sha256: SHA });
    expect((await resolveOld()).secrets).toEqual({ STRIPE_SECRET_KEY: STRIPE, OPENAI_API_KEY: OPENAI });
    const fresh = await setUp(service, "rotation-new");
    expect(await keyOf(fresh.keychain.id)).toBe("2026-12");
    expect(await keyOf(old.keychain.id)).toBe("2026-06");
    await service
      .keychains()
      .putSecret({ keychainId: old.keychain.id, name: "STRIPE_SECRET_KEY", value: `${STRIPE}-v2` });

    // Step 2: re-wrap, while the service keeps running.
    const run = await rewrapCommand(databaseUrl, `${second},${first}`);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("re-wrapped 1 keychain data key(s) under master key 2026-12; none is left");
    expect(await keyOf(old.keychain.id)).toBe("2026-12");
    const audits = (await auditRows(service, "keychain.rewrap")).map((r) => r.details);
    expect(audits).toEqual([{ keychainId: old.keychain.id, from: "2026-06", to: "2026-12" }]);
    expect((await resolveOld()).secrets.STRIPE_SECRET_KEY).toBe(`${STRIPE}-v2`);
    // Nothing left to do: a second run moves nothing.
    expect((await rewrapCommand(databaseUrl, `${second},${first}`)).stdout).toContain("re-wrapped 0");
    await service.close();

    // Step 3: the old key is gone from the configuration.
    service = await startTestService({ databaseUrl, settings: { keychainMasterKey: second } });
    expect((await resolveOld()).secrets.STRIPE_SECRET_KEY).toBe(`${STRIPE}-v2`);
    const freshResolved = await service
      .keychains(fresh.keychain.secret)
      .resolveSecrets({ packageName: `${PACKAGE}-rotation-new`, version: VERSION, sha256: SHA });
    expect(freshResolved.secrets.OPENAI_API_KEY).toBe(OPENAI);
    await service.close();
  });

  it("says which master key is missing when the old key was removed before the re-wrap", async () => {
    let service = await startTestService({ settings: { keychainMasterKey: first } });
    const databaseUrl = service.databaseUrl;
    const old = await setUp(service, "removed-early");
    await service.close();
    service = await startTestService({ databaseUrl, settings: { keychainMasterKey: second } });
    try {
      const error = await rpcError(
        service
          .keychains(old.keychain.secret)
          .resolveSecrets({ packageName: `${PACKAGE}-removed-early`, version: VERSION, sha256: SHA }),
      );
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.rawMessage).toContain('master key "2026-06"');
      expect(error.rawMessage).toContain("LATCHKEY_KEYCHAIN_MASTER_KEY");
      const run = await rewrapCommand(databaseUrl, second);
      expect(run.code).toBe(1);
      expect(run.stdout).toContain(`${old.keychain.id} (unknown_master_key)`);
    } finally {
      await service.close();
    }
  });

  it("refuses other material under the same master key id with DATA_LOSS", async () => {
    let service = await startTestService({ settings: { keychainMasterKey: first } });
    const databaseUrl = service.databaseUrl;
    const old = await setUp(service, "same-id");
    await service.close();
    service = await startTestService({ databaseUrl, settings: { keychainMasterKey: masterKey("2026-06") } });
    try {
      const error = await rpcError(
        service
          .keychains(old.keychain.secret)
          .resolveSecrets({ packageName: `${PACKAGE}-same-id`, version: VERSION, sha256: SHA }),
      );
      expect(error.code).toBe(Code.DataLoss);
    } finally {
      await service.close();
    }
  });
});

describe("no master key", () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService();
  });
  afterAll(() => service?.close());

  it("answers every keychain RPC with FAILED_PRECONDITION naming the setting", async () => {
    const client = service.keychains();
    const calls: Array<() => Promise<unknown>> = [
      () => client.createKeychain({ teamId: "team_0123456789012345678901", name: "x" }),
      () => client.listKeychains({}),
      () => client.revokeKeychain({ keychainId: "kc_0123456789012345678901" }),
      () => client.putSecret({ keychainId: "kc_0123456789012345678901", name: "A", value: "v" }),
      () => client.listSecretNames({ keychainId: "kc_0123456789012345678901" }),
      () => client.deleteSecret({ keychainId: "kc_0123456789012345678901", name: "A" }),
      () => client.registerPackageVersion({}),
      () => client.grantPackage({}),
      () => client.revokeGrant({}),
      () => client.listGrants({}),
      () => service.keychains(null).resolveSecrets({}),
    ];
    for (const call of calls) {
      const error = await rpcError(call());
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.rawMessage).toContain("LATCHKEY_KEYCHAIN_MASTER_KEY");
      expect(error.rawMessage).toContain("LATCHKEY_KEYCHAIN_MASTER_KEY_FILE");
    }
  });
});

describe("plaintext never leaves", () => {
  it("is in no log line (debug level), audit row, error message or stored row", async () => {
    const lines: string[] = [];
    const logger = pino({ level: "debug" }, { write: (line: string) => lines.push(line) });
    const service = await startTestService({ settings: { keychainMasterKey: masterKey("log") }, logger });
    try {
      const { keychain, resolve } = await setUp(service, "log-capture");
      await resolve();
      // Refusals, failures and bad input with the values in them.
      const refused = await rpcError(
        service
          .keychains(keychain.secret)
          .resolveSecrets({ packageName: `${PACKAGE}-log-capture`, version: VERSION, sha256: digestOf("x") }),
      );
      const badName = await rpcError(
        service.keychains().putSecret({ keychainId: keychain.id, name: `bad name ${STRIPE}`, value: STRIPE }),
      );
      const tooLong = await rpcError(
        service
          .keychains()
          .putSecret({ keychainId: keychain.id, name: "LONG", value: `${STRIPE}${"x".repeat(17_000)}` }),
      );
      const nul = await rpcError(
        service.keychains().putSecret({ keychainId: keychain.id, name: "NUL", value: `${OPENAI}\0` }),
      );
      const stored = (await service.sql.query("select ciphertext from keychain_secrets")).rows
        .map((row) => (row.ciphertext as Buffer).toString("latin1"))
        .join("");
      expect(stored.length).toBeGreaterThan(STRIPE.length + OPENAI.length);
      await service.keychains().revokeKeychain({ keychainId: keychain.id, reason: "done" });
      const unauthenticated = await rpcError(resolve());
      expect(badName.rawMessage).toMatch(/^name: /);
      for (const error of [refused, badName, tooLong, nul, unauthenticated]) {
        expect(error.rawMessage).not.toContain(STRIPE);
        expect(error.rawMessage).not.toContain(OPENAI);
      }
      const log = lines.join("");
      expect(log).toContain("keychain secrets released");
      expect(log).toContain("keychain secrets refused to a package");
      const audit = JSON.stringify((await service.sql.query("select * from audit_log")).rows);
      const wrapped = (await service.sql.query("select wrapped_data_key from keychains")).rows
        .map((row) => (row.wrapped_data_key as Buffer).toString("latin1"))
        .join("");
      for (const where of [log, audit, stored, wrapped]) {
        for (const secret of [STRIPE, OPENAI, keychain.secret, ROOT_KEY, "security-test"]) {
          expect(where).not.toContain(secret);
        }
      }
    } finally {
      await service.close();
    }
  });
});
