import { ConfigError } from "@latchkey/config";
import { describe, expect, it } from "vitest";
import { loadTokenServiceConfig } from "./config.js";

function settingsAt(error: unknown): readonly string[] {
  return error instanceof ConfigError ? error.settings : [];
}

function failure(env: Record<string, string>): unknown {
  try {
    loadTokenServiceConfig(env);
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("token-service configuration: the outbox currency settings", () => {
  it("defaults to a round every 250 ms and a row cache trusted for 1 s of proof", () => {
    const config = loadTokenServiceConfig({});
    expect(config.outboxCurrencyMs).toBe(250);
    expect(config.verifyCacheMaxStaleMs).toBe(1_000);
  });

  it("takes values in range", () => {
    const config = loadTokenServiceConfig({
      LATCHKEY_OUTBOX_CURRENCY_MS: "20",
      LATCHKEY_VERIFY_CACHE_MAX_STALE_MS: "0",
    });
    expect(config.outboxCurrencyMs).toBe(20);
    expect(config.verifyCacheMaxStaleMs).toBe(0);
  });

  it.each([
    ["LATCHKEY_OUTBOX_CURRENCY_MS", "0"],
    ["LATCHKEY_OUTBOX_CURRENCY_MS", "10001"],
    ["LATCHKEY_OUTBOX_CURRENCY_MS", "250ms"],
    ["LATCHKEY_OUTBOX_CURRENCY_MS", "-5"],
    ["LATCHKEY_VERIFY_CACHE_MAX_STALE_MS", "-1"],
    ["LATCHKEY_VERIFY_CACHE_MAX_STALE_MS", "3600001"],
    ["LATCHKEY_VERIFY_CACHE_MAX_STALE_MS", "1.5"],
    ["LATCHKEY_VERIFY_CACHE_MAX_STALE_MS", "soon"],
  ])("refuses %s=%j and names it", (variable, value) => {
    const error = failure({ [variable]: value });
    expect(error).toBeInstanceOf(ConfigError);
    expect(settingsAt(error)).toEqual([variable]);
    expect(String((error as Error).message)).toContain(variable);
  });
});
