import type { ConfigError } from "@latchkey/config";
import { describe, expect, it } from "vitest";
import { loadSidecarConfig, SIDECAR_ENV } from "./config.js";

describe("sidecar configuration", () => {
  it("has defaults for everything but the upstream", () => {
    const config = loadSidecarConfig({ LATCHKEY_UPSTREAM: "http://127.0.0.1:3000" });
    expect(config.listen).toEqual({ host: "0.0.0.0", port: 8080 });
    expect(config.adminListen).toEqual({ host: "0.0.0.0", port: 9090 });
    expect(config.enforcement).toBe("enforce");
    expect(config.tokenServiceUrl.href).toBe("http://127.0.0.1:8082/");
    expect(config.maxCredentialBytes).toBe(512);
    expect(config.policy).toBeUndefined();
    expect(config.trustedProxies.entries).toEqual(["127.0.0.1", "::1"]);
    expect(config.traceParents).toBe("trusted");
  });

  it("names the variable of a bad or missing setting", () => {
    expect(() => loadSidecarConfig({})).toThrow(/upstream|LATCHKEY_UPSTREAM/);
    expect(() => loadSidecarConfig({ LATCHKEY_UPSTREAM: "ftp://x" })).toThrow(/LATCHKEY_UPSTREAM/);
    expect(() =>
      loadSidecarConfig({ LATCHKEY_UPSTREAM: "http://x", LATCHKEY_ENFORCEMENT: "strict" }),
    ).toThrow(/LATCHKEY_ENFORCEMENT/);
    expect(() =>
      loadSidecarConfig({ LATCHKEY_UPSTREAM: "http://x", LATCHKEY_TRUSTED_PROXIES: "10.0.0.0/33" }),
    ).toThrow(/LATCHKEY_TRUSTED_PROXIES/);
    expect(() =>
      loadSidecarConfig({ LATCHKEY_UPSTREAM: "http://x", LATCHKEY_MAX_CREDENTIAL_BYTES: "big" }),
    ).toThrow(/LATCHKEY_MAX_CREDENTIAL_BYTES/);
    expect(() =>
      loadSidecarConfig({ LATCHKEY_UPSTREAM: "http://x", LATCHKEY_TRACE_PARENTS: "sometimes" }),
    ).toThrow(/LATCHKEY_TRACE_PARENTS/);
  });

  it("has HTTPS off by default, on 0.0.0.0:8443 when a certificate and key are given", () => {
    const off = loadSidecarConfig({ LATCHKEY_UPSTREAM: "http://x" });
    expect(off.tlsCert).toBeUndefined();
    expect(off.plainHttp).toBe("serve");
    const on = loadSidecarConfig({
      LATCHKEY_UPSTREAM: "http://x",
      LATCHKEY_SIDECAR_TLS_CERT: "/tls/tls.crt",
      LATCHKEY_SIDECAR_TLS_KEY: "/tls/tls.key",
      LATCHKEY_SIDECAR_PLAIN_HTTP: "refuse",
    });
    expect(on.tlsListen).toEqual({ host: "0.0.0.0", port: 8443 });
    expect(on.plainHttp).toBe("refuse");
  });

  it.each([
    [{ LATCHKEY_SIDECAR_TLS_CERT: "/tls/tls.crt" }, "LATCHKEY_SIDECAR_TLS_KEY"],
    [{ LATCHKEY_SIDECAR_TLS_KEY: "/tls/tls.key" }, "LATCHKEY_SIDECAR_TLS_CERT"],
    [{ LATCHKEY_SIDECAR_TLS_LISTEN: "8443" }, "LATCHKEY_SIDECAR_TLS_LISTEN"],
    [{ LATCHKEY_SIDECAR_TLS_LISTEN: "0.0.0.0:70000" }, "LATCHKEY_SIDECAR_TLS_LISTEN"],
    [{ LATCHKEY_SIDECAR_PLAIN_HTTP: "redirect" }, "LATCHKEY_SIDECAR_PLAIN_HTTP"],
    [{ LATCHKEY_SIDECAR_PLAIN_HTTP: "refuse" }, "LATCHKEY_SIDECAR_PLAIN_HTTP"],
    [
      { LATCHKEY_TOKEN_SERVICE_URL: "https://ts:8082", LATCHKEY_TOKEN_SERVICE_CLIENT_KEY: "/c/tls.key" },
      "LATCHKEY_TOKEN_SERVICE_CLIENT_CERT",
    ],
    [
      { LATCHKEY_TOKEN_SERVICE_CLIENT_CERT: "/c/tls.crt", LATCHKEY_TOKEN_SERVICE_CLIENT_KEY: "/c/tls.key" },
      "LATCHKEY_TOKEN_SERVICE_CLIENT_CERT",
    ],
  ])("names the variable of a bad HTTPS or client-certificate setting: %j", (env, variable) => {
    let settings: readonly string[] = [];
    try {
      loadSidecarConfig({ LATCHKEY_UPSTREAM: "http://x", ...env });
    } catch (error) {
      settings = (error as ConfigError).settings;
    }
    expect(settings).toEqual([variable]);
  });

  it("serves ext_authz only when its listen address is set, and names the variable of a bad one", () => {
    expect(loadSidecarConfig({ LATCHKEY_UPSTREAM: "http://x" }).extAuthzListen).toBeUndefined();
    expect(
      loadSidecarConfig({ LATCHKEY_UPSTREAM: "http://x", LATCHKEY_SIDECAR_EXTAUTHZ_LISTEN: "127.0.0.1:8083" })
        .extAuthzListen,
    ).toEqual({ host: "127.0.0.1", port: 8083 });
    for (const bad of ["8083", "127.0.0.1:99999", "localhost"])
      expect(() =>
        loadSidecarConfig({ LATCHKEY_UPSTREAM: "http://x", LATCHKEY_SIDECAR_EXTAUTHZ_LISTEN: bad }),
      ).toThrow(/LATCHKEY_SIDECAR_EXTAUTHZ_LISTEN/);
  });

  it("parses trusted proxies as addresses and ranges, IPv4 also in its mapped IPv6 form", () => {
    const { trustedProxies } = loadSidecarConfig({
      LATCHKEY_UPSTREAM: "http://x",
      LATCHKEY_TRUSTED_PROXIES: "10.0.0.0/8, 192.168.1.1,fd00::/8",
    });
    expect(trustedProxies.list.check("10.9.8.7", "ipv4")).toBe(true);
    expect(trustedProxies.list.check("::ffff:10.9.8.7", "ipv6")).toBe(true);
    expect(trustedProxies.list.check("192.168.1.2", "ipv4")).toBe(false);
    expect(trustedProxies.list.check("fd12::1", "ipv6")).toBe(true);
  });

  it("maps every field to a LATCHKEY_ variable (or NATS_URL)", () => {
    for (const variable of Object.values(SIDECAR_ENV))
      expect(variable).toMatch(/^(LATCHKEY_[A-Z_]+|NATS_URL)$/);
  });
});
