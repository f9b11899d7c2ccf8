import { ConfigError } from "@latchkey/config";
import { describe, expect, it } from "vitest";
import { loadTokenServiceConfig } from "./config.js";

/** The variables a ConfigError names for `env`, or [] when it loads. */
function refused(env: Record<string, string>): readonly string[] {
  try {
    loadTokenServiceConfig(env);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.settings;
    throw error;
  }
}

describe("token-service configuration: the audit log and mutual TLS", () => {
  it("keeps audit entries a year, sweeps a minute apart in batches of 1000, writes 120 refusal rows a minute", () => {
    const config = loadTokenServiceConfig({});
    expect(config.auditRetentionDays).toBe(365);
    expect(config.auditSweepMs).toBe(60_000);
    expect(config.auditSweepBatch).toBe(1_000);
    expect(config.auditRefusedCallsPerMinute).toBe(120);
    expect(config.grpcClientCaFile).toBeUndefined();
    expect(loadTokenServiceConfig({ LATCHKEY_AUDIT_RETENTION_DAYS: "0" }).auditRetentionDays).toBe(0);
  });

  it.each([
    ["LATCHKEY_AUDIT_RETENTION_DAYS", "-1"],
    ["LATCHKEY_AUDIT_RETENTION_DAYS", "36501"],
    ["LATCHKEY_AUDIT_RETENTION_DAYS", "1.5"],
    ["LATCHKEY_AUDIT_RETENTION_DAYS", "forever"],
    ["LATCHKEY_AUDIT_SWEEP_MS", "999"],
    ["LATCHKEY_AUDIT_SWEEP_BATCH", "0"],
    ["LATCHKEY_AUDIT_SWEEP_BATCH", "100001"],
    ["LATCHKEY_AUDIT_REFUSED_CALLS_PER_MINUTE", "0"],
    ["LATCHKEY_AUDIT_REFUSED_CALLS_PER_MINUTE", "lots"],
  ])("refuses %s=%j, naming it", (variable, value) => {
    expect(refused({ [variable]: value })).toEqual([variable]);
  });

  it("refuses a client CA without TLS: mutual TLS is TLS first", () => {
    expect(refused({ LATCHKEY_GRPC_CLIENT_CA_FILE: "/etc/latchkey/clients-ca.crt" })).toEqual([
      "LATCHKEY_GRPC_CLIENT_CA_FILE",
    ]);
    const config = loadTokenServiceConfig({
      LATCHKEY_GRPC_CLIENT_CA_FILE: "/etc/latchkey/clients-ca.crt",
      LATCHKEY_TLS_CERT: "/etc/latchkey/tls.crt",
      LATCHKEY_TLS_KEY: "/etc/latchkey/tls.key",
    });
    expect(config.grpcClientCaFile).toBe("/etc/latchkey/clients-ca.crt");
  });
});
