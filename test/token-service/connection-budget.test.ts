// Issue 17, defect 7: each replica holds one PostgreSQL connection outside its
// pool (the outbox publisher's LISTEN), so the budget per replica is
// LATCHKEY_DB_POOL_MAX + 1 (deploy/README.md, "Connection budget"). A running
// service with its pool saturated by concurrent cache misses, counted by the
// server itself.
import { generateToken } from "@latchkey/token";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestService, type TestService } from "./start.js";

const POOL_MAX = 3;
let service: TestService;

beforeAll(async () => {
  service = await startTestService({ settings: { dbPoolMax: POOL_MAX } });
});
afterAll(async () => {
  await service?.close();
});

it("holds at most LATCHKEY_DB_POOL_MAX + 1 connections: the pool, and the LISTEN connection", async () => {
  const database = new URL(service.databaseUrl).pathname.slice(1);
  // The counting connection names itself, so only the service's connections are counted.
  const observer = new pg.Client({ connectionString: service.databaseUrl, application_name: "budget-check" });
  await observer.connect();
  const count = async () => {
    const { rows } = await observer.query<{ n: number; listening: number }>(
      `select count(*)::int as n, count(*) filter (where query ilike 'listen %')::int as listening
       from pg_stat_activity where datname = $1 and application_name <> 'budget-check'`,
      [database],
    );
    return rows[0] ?? { n: 0, listening: 0 };
  };
  let most = 0;
  // Distinct unknown tokens miss every cache: each call needs a pooled connection.
  for (let round = 0; round < 5; round++) {
    const calls = Array.from({ length: 40 }, () =>
      service.tokens(null).verify({ token: generateToken({ prefix: "lk", environment: "live" }) }),
    );
    const [seen] = await Promise.all([count(), ...calls]);
    most = Math.max(most, seen.n);
    expect(seen.listening).toBe(1);
  }
  const after = await count();
  await observer.end();
  most = Math.max(most, after.n);
  expect(most).toBe(POOL_MAX + 1);
});
