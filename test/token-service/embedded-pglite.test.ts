// The embedded default of `npm start`: the service on PGlite in a folder,
// migrated, closed, reopened and serving. (In memory: migrations.pglite.test.ts.)
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { TokenService, VerifyResult } from "@latchkey/proto";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { loadTokenServiceConfig } from "../../services/token-service/src/config.js";
import { openDatabase } from "../../services/token-service/src/db/database.js";
import { migrateToLatest } from "../../services/token-service/src/db/migrate.js";
import { startTokenService } from "../../services/token-service/src/token-service.js";
import { ALL_MIGRATIONS as ALL } from "./schema-inspection.js";
import { ROOT_KEY } from "./start.js";

describe("on PGlite in a folder", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("keeps an on-disk database across a reopen, and serves Issue, Verify and Revoke on it", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "latchkey-pglite-"));
    dirs.push(dataDir);
    const first = await openDatabase({ dataDir, poolMax: 1 });
    try {
      expect((await migrateToLatest(first.db)).applied).toEqual(ALL);
      await first.db
        .insertInto("teams")
        .values({ id: "team_0000000000000000000001", name: "kept" })
        .execute();
    } finally {
      await first.close();
    }

    // The service itself, on the same folder: the embedded default of `npm start`.
    // No DATABASE_URL and no NATS_URL: PGlite and the in-process bus.
    const config = loadTokenServiceConfig({
      LATCHKEY_LISTEN: "127.0.0.1:0",
      LATCHKEY_GRPC_LISTEN: "127.0.0.1:0",
      LATCHKEY_DATA_DIR: dataDir,
      LATCHKEY_ROOT_KEY: ROOT_KEY,
      LATCHKEY_LOG_LEVEL: "silent",
    });
    const service = await startTokenService(config, { logger: pino({ level: "silent" }) });
    try {
      expect(service.database.kind).toBe("pglite");
      expect((await migrateToLatest(service.database.db)).applied).toEqual([]);
      const client = createClient(
        TokenService,
        createConnectTransport({ baseUrl: `http://127.0.0.1:${service.port}`, httpVersion: "2" }),
      );
      const headers = { authorization: `Bearer ${ROOT_KEY}` };
      const issued = await client.issue(
        { teamId: "team_0000000000000000000001", name: "embedded" },
        { headers },
      );
      expect((await client.verify({ token: issued.token })).result).toBe(VerifyResult.VALID);
      await client.revoke({ keyId: issued.key?.id ?? "" }, { headers });
      expect((await client.verify({ token: issued.token })).result).toBe(VerifyResult.REVOKED);
      await service.publisher.drain();
      const pending = await service.database.db
        .selectFrom("key_event_outbox")
        .select("published_at")
        .executeTakeFirstOrThrow();
      expect(pending.published_at).not.toBeNull();
    } finally {
      await service.close();
    }
  }, 120_000); // PGlite is CPU-bound: opening, migrating and serving take over 30 s on a busy 2-core machine
});
