// PostgreSQL goes away under a running stack (real NATS, a real token-service,
// verifiers). No replica can prove the outbox published any more, so the
// verifiers' proofs of currency stop: a cached answer older than maxStaleMs is
// re-verified, the token-service cannot read the key, and the verifier fails
// closed (UNAVAILABLE), within maxStaleMs plus one Verify. A revocation
// committed just before the outage could be waiting in the outbox, and nothing
// can tell. A verifier configured to serve stale on error keeps answering, and
// says so (stale: true), for its stated `ttlMs + serveStaleOnErrorMs`.
import { createNatsKeyEventBus, type NatsKeyEventBus } from "@latchkey/events";
import { createVerifier, type Verifier } from "@latchkey/verifier";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type NatsServer, type PostgresServer, startNats, startPostgres } from "../harness/index.js";
import { eventually, waitUntil } from "../harness/wait.js";
import { startTestService, type TestService } from "../token-service/start.js";

const MAX_STALE_MS = 1_000;
const ONE_VERIFY_MS = 2_500; // the Verify that finds the database gone, with this machine's margin

let nats: NatsServer;
let postgres: PostgresServer;
let service: TestService;
let strict: Verifier;
let lenient: Verifier;
const buses: NatsKeyEventBus[] = [];

function verifier(name: string, serveStaleOnErrorMs: number): Verifier {
  const bus = createNatsKeyEventBus({ servers: nats.url, name });
  buses.push(bus);
  return createVerifier({
    tokenService: service.grpcUrl,
    events: bus,
    prefix: "lk",
    maxStaleMs: MAX_STALE_MS,
    heartbeatIntervalMs: 100,
    serveStaleOnErrorMs,
    timeoutMs: 1_000,
  });
}

beforeAll(async () => {
  nats = await startNats();
  postgres = await startPostgres();
  service = await startTestService({
    databaseUrl: postgres.url,
    natsUrl: nats.url,
    settings: { metricsListen: "127.0.0.1:0" },
  });
  strict = verifier("db-down-strict", 0);
  lenient = verifier("db-down-lenient", 60_000);
  await Promise.all([strict.ready(), lenient.ready()]);
  await waitUntil(
    () => [strict, lenient].every((v) => Date.now() - v.status().coveredAt < MAX_STALE_MS / 2),
    {
      what: "both verifiers current",
      timeoutMs: 20_000,
    },
  );
}, 60_000);

afterAll(async () => {
  await Promise.all([strict?.close(), lenient?.close()]);
  await Promise.all(buses.map((bus) => bus.close()));
  await service?.close();
  await postgres?.stop();
  await nats?.dispose();
});

it("fails closed within maxStaleMs plus one Verify, or serves marked stale answers when told to", async () => {
  const teamId = (await service.teams().createTeam({ name: "db-down" })).team?.id ?? "";
  const { token } = await service.tokens().issue({ teamId, name: "cached" });
  for (const v of [strict, lenient]) expect((await v.verify(token)).code).toBe("VALID");

  await postgres.stop();
  const downAt = performance.now();
  await waitUntil(async () => (await strict.verify(token)).code === "UNAVAILABLE", {
    what: "the strict verifier failing closed",
    timeoutMs: 30_000,
    intervalMs: 20,
  });
  expect(performance.now() - downAt).toBeLessThan(MAX_STALE_MS + ONE_VERIFY_MS);
  expect(strict.verifyCached(token)).toBeUndefined();
  expect(await strict.metrics.metrics()).toMatch(/^latchkey_verifier_unavailable_total [1-9]/m);

  // Serve-stale-on-error: the same stale entry, answered and marked.
  expect(await lenient.verify(token)).toMatchObject({ code: "VALID", stale: true });

  // The token-service says why: its rounds fail, and the proof behind its own row cache ages.
  const scrape = () => fetch(`http://127.0.0.1:${service.handle.metricsPort}/metrics`).then((r) => r.text());
  const ageOf = (text: string) =>
    Number(/^latchkey_token_service_row_cache_currency_age_seconds (\S+)$/m.exec(text)?.[1]);
  const metrics = await eventually(scrape, (text) => ageOf(text) > MAX_STALE_MS / 1000, {
    what: "the row cache's proof older than maxStale",
  });
  expect(metrics).toMatch(/^latchkey_token_service_outbox_currency_rounds_total\{outcome="failed"\} [1-9]/m);
});
