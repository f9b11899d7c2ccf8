// PostgreSQL goes away: a Verify that needs the database answers UNAVAILABLE
// (retry later, so verifiers fail closed or serve stale by their own rules),
// never INTERNAL, and never leaks the connection error.
import { Code, ConnectError } from "@connectrpc/connect";
import { VerifyResult } from "@latchkey/proto";
import { generateToken } from "@latchkey/token";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type PostgresServer, startPostgres } from "../harness/index.js";
import { startTestService, type TestService } from "./start.js";

let postgres: PostgresServer;
let service: TestService;
beforeAll(async () => {
  postgres = await startPostgres();
  // Row cache off: every Verify reads the database.
  service = await startTestService({ databaseUrl: postgres.url, settings: { verifyCacheMaxEntries: 0 } });
});
afterAll(async () => {
  await service?.close();
  await postgres?.stop();
});

it("answers UNAVAILABLE while PostgreSQL is down", async () => {
  const teamId = (await service.teams().createTeam({ name: "db-down" })).team?.id ?? "";
  const { token } = await service.tokens().issue({ teamId, name: "k" });
  expect((await service.tokens(null).verify({ token })).result).toBe(VerifyResult.VALID);
  await postgres.stop();
  for (const candidate of [token, generateToken({ prefix: "lk", environment: "live" })]) {
    const error = await service
      .tokens(null)
      .verify({ token: candidate })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).not.toMatch(/ECONNREFUSED|5432|postgres/i);
  }
  // A malformed token needs no database: still answered.
  expect((await service.tokens(null).verify({ token: "lk_live_nope" })).result).toBe(VerifyResult.MALFORMED);
});
