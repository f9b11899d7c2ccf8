// last_used_at is written in batches, not once per Verify.
import { setTimeout as sleep } from "node:timers/promises";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { VerifyResult } from "@latchkey/proto";
import { hashToken } from "@latchkey/token";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../services/token-service/src/db/database.js";
import { migrateToLatest } from "../../services/token-service/src/db/migrate.js";
import { LastUsedRecorder } from "../../services/token-service/src/keys/last-used-recorder.js";
import { freshDatabaseUrl } from "../harness/index.js";
import { eventually } from "../harness/wait.js";
import { startTestService, type TestService } from "./start.js";

/** Milliseconds of a timestamp; NaN when unset, so comparisons fail. */
const millis = (t: Timestamp | undefined) => (t ? timestampDate(t).getTime() : Number.NaN);

describe("with a 200 ms flush interval", () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService({ settings: { lastUsedFlushMs: 200 } });
  });
  afterAll(() => service?.close());

  it("shows the time of use on Get shortly after a Verify, and not for failed verifications", async () => {
    const teamId = (await service.teams().createTeam({ name: "used" })).team?.id ?? "";
    const used = await service.tokens().issue({ teamId, name: "used" });
    const unused = await service.tokens().issue({ teamId, name: "unused" });
    const before = Date.now();
    expect((await service.tokens(null).verify({ token: used.token })).result).toBe(VerifyResult.VALID);
    const { key } = await eventually(
      () => service.tokens().get({ keyId: used.key?.id ?? "" }),
      (r) => r.key?.lastUsedTime !== undefined,
    );
    const at = millis(key?.lastUsedTime);
    expect(at).toBeGreaterThanOrEqual(before - 5);
    expect(at).toBeLessThanOrEqual(Date.now());

    // A revoked key's failed verifications do not count as use.
    await service.tokens().revoke({ keyId: unused.key?.id ?? "" });
    expect((await service.tokens(null).verify({ token: unused.token })).result).toBe(VerifyResult.REVOKED);
    await sleep(450);
    expect((await service.tokens().get({ keyId: unused.key?.id ?? "" })).key?.lastUsedTime).toBeUndefined();
  });
});

describe("with a 10 minute flush interval", () => {
  it("writes nothing per Verify, and writes the latest use when the service closes", async () => {
    const service = await startTestService({ settings: { lastUsedFlushMs: 600_000 } });
    let closed = false;
    try {
      const teamId = (await service.teams().createTeam({ name: "batched" })).team?.id ?? "";
      const { key, token } = await service.tokens().issue({ teamId, name: "busy" });
      const keyId = key?.id ?? "";
      for (let i = 0; i < 20; i++) await service.tokens(null).verify({ token });
      const lastVerify = Date.now();
      const read = async () =>
        (await service.sql.query("select last_used_at from api_keys where id = $1", [keyId])).rows[0]
          ?.last_used_at as Date | null;
      expect(await read()).toBeNull();
      await service.handle.close();
      closed = true;
      const written = await read();
      expect(written).toBeInstanceOf(Date);
      expect(Math.abs((written?.getTime() ?? 0) - lastVerify)).toBeLessThan(1_000);
    } finally {
      if (closed) await service.sql.end();
      else await service.close();
    }
  });
});

describe("LastUsedRecorder.close", () => {
  it("writes what was recorded while an interval's flush was under way", async () => {
    const handle = await openDatabase({
      databaseUrl: await freshDatabaseUrl("lastused"),
      dataDir: "unused",
      poolMax: 2,
    });
    try {
      await migrateToLatest(handle.db);
      await handle.db.insertInto("teams").values({ id: "team_1", name: "t" }).execute();
      for (const id of ["key_1", "key_2"]) {
        await handle.db
          .insertInto("api_keys")
          .values({
            id,
            team_id: "team_1",
            name: id,
            scopes: [],
            environment: "live",
            token_hash: hashToken(id),
            hint: "…",
            created_by: "root",
            expires_at: null,
            enabled: true,
            revoked_at: null,
            revoked_reason: null,
            last_used_at: null,
            metadata: "{}",
            rotated_from: null,
          })
          .execute();
      }
      const recorder = new LastUsedRecorder(handle.db, pino({ level: "silent" }), 600_000);
      recorder.record("key_1");
      const underWay = recorder.flush();
      recorder.record("key_2");
      await recorder.close();
      await underWay;
      const rows = await handle.db
        .selectFrom("api_keys")
        .select(["id", "last_used_at"])
        .orderBy("id")
        .execute();
      expect(rows.map((r) => [r.id, r.last_used_at instanceof Date])).toEqual([
        ["key_1", true],
        ["key_2", true],
      ]);
    } finally {
      await handle.close();
    }
  });
});
