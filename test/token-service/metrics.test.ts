// The token-service's /metrics (LATCHKEY_METRICS_LISTEN), scraped over HTTP
// from a running service: Verify answers by result, row-cache hits, RPC
// latency on both listeners, and the outbox backlog, which grows while the
// key event bus is unreachable and says how late revocations are.
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TokenService, VerifyResult } from "@latchkey/proto";
import { generateToken } from "@latchkey/token";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../harness/wait.js";
import { sample, scrape } from "./scrape-metrics.js";
import { startTestService, type TestService } from "./start.js";

describe("a token-service with LATCHKEY_METRICS_LISTEN", () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService({ settings: { metricsListen: "127.0.0.1:0" } });
  });
  afterAll(async () => {
    await service?.close();
  });
  const metricsPort = () => service.handle.metricsPort ?? 0;

  it("counts Verify answers by result and row-cache lookups, and times RPCs on both listeners", async () => {
    const { teamId } = await service.teamWithAdmin("metrics");
    const { token } = await service.tokens().issue({ teamId, name: "scraped" });
    const native = createClient(TokenService, createGrpcTransport({ baseUrl: service.grpcUrl }));
    expect((await native.verify({ token })).result).toBe(VerifyResult.VALID); // a miss, then cached
    expect((await native.verify({ token })).result).toBe(VerifyResult.VALID); // a hit
    const unknown = generateToken({ prefix: "lk", environment: "live" });
    expect((await native.verify({ token: unknown })).result).toBe(VerifyResult.NOT_FOUND);
    expect((await native.verify({ token: "lk_live_nonsense" })).result).toBe(VerifyResult.MALFORMED);

    const text = await scrape(metricsPort());
    const verified = (result: string) => sample(text, "latchkey_token_service_verify_total", { result });
    expect(verified("VALID")).toBe(2);
    expect(verified("NOT_FOUND")).toBe(1);
    expect(verified("MALFORMED")).toBe(1);
    expect(verified("REVOKED")).toBe(0);
    const cache = (outcome: string) =>
      sample(text, "latchkey_token_service_row_cache_lookups_total", { outcome });
    expect(cache("hit")).toBe(1);
    expect(cache("miss")).toBe(2);
    const verifyCalls = sample(text, "latchkey_token_service_rpc_duration_seconds_count", {
      procedure: "latchkey.v1.TokenService/Verify",
      code: "OK",
    });
    expect(verifyCalls).toBe(4);
    const verifyBucket = (le: string) =>
      sample(text, "latchkey_token_service_rpc_duration_seconds_bucket", {
        procedure: "latchkey.v1.TokenService/Verify",
        code: "OK",
        le,
      });
    expect(verifyBucket("+Inf")).toBe(4);
    expect(verifyBucket("5")).toBe(4);
    expect(verifyBucket("0.0005")).toBeLessThanOrEqual(4);
    // Issue went over the Connect listener.
    const issueCalls = sample(text, "latchkey_token_service_rpc_duration_seconds_count", {
      procedure: "latchkey.v1.TokenService/Issue",
      code: "OK",
    });
    expect(issueCalls).toBeGreaterThanOrEqual(1);
    expect(sample(text, "latchkey_token_service_key_events_connected")).toBe(1);
    expect(sample(text, "latchkey_token_service_nats_connected")).toBe(1);
    // The outbox is proven published round after round, and the row cache's proof is recent.
    expect(
      sample(text, "latchkey_token_service_outbox_currency_rounds_total", { outcome: "proven" }),
    ).toBeGreaterThanOrEqual(1);
    expect(sample(text, "latchkey_token_service_row_cache_currency_age_seconds")).toBeGreaterThanOrEqual(0);
    expect(sample(text, "latchkey_token_service_row_cache_currency_age_seconds")).toBeLessThan(60);
    expect(sample(text, "latchkey_token_service_outbox_pending_rows")).toBe(0);
    expect(sample(text, "latchkey_token_service_outbox_oldest_pending_age_seconds")).toBe(0);
    expect(sample(text, "process_resident_memory_bytes")).toBeGreaterThan(0);
    // Never a token, nor its hash.
    expect(text).not.toContain(token);
  });

  it("answers only /metrics", async () => {
    expect((await fetch(`http://127.0.0.1:${metricsPort()}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${metricsPort()}/metrics`, { method: "POST" })).status).toBe(405);
  });
});

describe("a token-service cut off from NATS", () => {
  let service: TestService;
  let natsPort: number;
  beforeAll(async () => {
    // A port that accepts nothing: NATS is down from the start.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    natsPort = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    service = await startTestService({
      natsUrl: `nats://127.0.0.1:${natsPort}`,
      settings: { metricsListen: "127.0.0.1:0" },
    });
  });
  afterAll(async () => {
    await service?.close();
  });

  it("reports the outbox backlog: pending rows and the age of the oldest", async () => {
    const { teamId } = await service.teamWithAdmin("backlog");
    const { key } = await service.tokens().issue({ teamId, name: "to-revoke" });
    await service.tokens().revoke({ keyId: key?.id ?? "" });
    await sleep(1_100);
    const text = await scrape(service.handle.metricsPort ?? 0);
    expect(sample(text, "latchkey_token_service_outbox_pending_rows")).toBeGreaterThanOrEqual(1);
    expect(sample(text, "latchkey_token_service_outbox_oldest_pending_age_seconds")).toBeGreaterThanOrEqual(
      1,
    );
    expect(sample(text, "latchkey_token_service_key_events_connected")).toBe(0);
    expect(sample(text, "latchkey_token_service_nats_connected")).toBe(0);
    // No round can read the stream (each waits for NATS up to the bus's request timeout): nothing is
    // ever proven, so the row cache is not trusted.
    const rounds = (body: string, outcome: string) =>
      sample(body, "latchkey_token_service_outbox_currency_rounds_total", { outcome }) ?? 0;
    const later = await eventually(
      () => scrape(service.handle.metricsPort ?? 0),
      (body) => rounds(body, "failed") >= 1,
      { what: "a failed outbox currency round", timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(rounds(later, "proven")).toBe(0);
    expect(later).toMatch(/^latchkey_token_service_row_cache_currency_age_seconds \+Inf$/m);
  });
});
