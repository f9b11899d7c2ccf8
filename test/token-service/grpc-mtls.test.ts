// Mutual TLS on the token-service's native gRPC port (LATCHKEY_GRPC_CLIENT_CA_FILE): Verify carries
// raw keys, so a deployment can require every caller to show a certificate from its own CA. A sidecar
// process presents one (LATCHKEY_TOKEN_SERVICE_CLIENT_CERT/_KEY); a client without one, or with one
// from another CA, is refused in the handshake.
import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ConfigError } from "@latchkey/config";
import { Health, HealthCheckResponse_ServingStatus } from "@latchkey/proto/grpc";
import { generateToken } from "@latchkey/token";
import { createVerifier } from "@latchkey/verifier";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSidecarConfig } from "../../services/sidecar/src/config.js";
import { startTokenService } from "../../services/token-service/src/token-service.js";
import { send } from "../harness/http-client.js";
import { createTestPki, freshDatabaseUrl, type TestPki } from "../harness/index.js";
import { type RecordingUpstream, startRecordingUpstream } from "../sidecar/recording-upstream.js";
import { sidecarExit, spawnSidecar } from "../sidecar/sidecar-process.js";
import { runImportCommand } from "./import-command-process.js";
import { ROOT_KEY, startTestService, type TestService, testConfig } from "./start.js";

describe("mutual TLS on the native gRPC port", () => {
  let pki: TestPki;
  let stranger: TestPki;
  let service: TestService;
  let upstream: RecordingUpstream;
  let client: { certFile: string; keyFile: string };
  let strangerClient: { certFile: string; keyFile: string };
  let token: string;
  let teamId: string;
  const grpcUrl = () => `https://127.0.0.1:${service.handle.grpcPort}`;

  beforeAll(async () => {
    [pki, stranger, upstream] = await Promise.all([
      createTestPki("mtls"),
      createTestPki("mtls-stranger"),
      startRecordingUpstream(),
    ]);
    const server = await pki.issue("token-service", ["IP:127.0.0.1", "DNS:localhost"]);
    client = await pki.issue("sidecar", [], { use: "client" });
    strangerClient = await stranger.issue("intruder", [], { use: "client" });
    service = await startTestService({
      settings: {
        tlsCert: server.certFile,
        tlsKey: server.keyFile,
        grpcClientCaFile: pki.caFile,
        healthListen: "127.0.0.1:0",
      },
    });
    // The Connect port does not ask for client certificates (browsers, buf curl): admin calls go there.
    const connect = createConnectTransport({
      baseUrl: `https://127.0.0.1:${service.handle.port}`,
      httpVersion: "2",
      nodeOptions: { ca: readFileSync(pki.caFile) },
    });
    teamId = (await service.teams(undefined, connect).createTeam({ name: "mtls" })).team?.id ?? "";
    ({ token } = await service.tokens(undefined, connect).issue({ teamId, name: "mtls", scopes: ["read"] }));
  });
  afterAll(async () => {
    await service?.close();
    await upstream?.app.close();
    pki?.dispose();
    stranger?.dispose();
  });

  const verifierWith = (tls: { certChain?: Buffer; privateKey?: Buffer }) =>
    createVerifier({
      tokenService: grpcUrl(),
      grpc: { tls: { rootCerts: readFileSync(pki.caFile), ...tls } },
    });

  it("a sidecar process with a client certificate from the CA verifies keys", async () => {
    const sidecar = await spawnSidecar({
      upstream: upstream.url,
      tokenServiceUrl: grpcUrl(),
      env: {
        LATCHKEY_TOKEN_SERVICE_CA_FILE: pki.caFile,
        LATCHKEY_TOKEN_SERVICE_CLIENT_CERT: client.certFile,
        LATCHKEY_TOKEN_SERVICE_CLIENT_KEY: client.keyFile,
      },
    });
    try {
      const response = await send(sidecar.url, "GET", "/mtls", { authorization: `Bearer ${token}` });
      expect(response.status).toBe(200);
      expect(upstream.seen).toContain("/mtls");
    } finally {
      await sidecar.stop();
    }
  });

  it("refuses a client without a certificate, and one whose certificate another CA signed", async () => {
    const withoutCertificate = verifierWith({});
    const fromStranger = verifierWith({
      certChain: readFileSync(strangerClient.certFile),
      privateKey: readFileSync(strangerClient.keyFile),
    });
    const withCertificate = verifierWith({
      certChain: readFileSync(client.certFile),
      privateKey: readFileSync(client.keyFile),
    });
    try {
      expect(await withoutCertificate.verify(token)).toMatchObject({ ok: false, code: "UNAVAILABLE" });
      expect(await fromStranger.verify(token)).toMatchObject({ ok: false, code: "UNAVAILABLE" });
      expect(await withCertificate.verify(token)).toMatchObject({ ok: true });
    } finally {
      await Promise.all([withoutCertificate.close(), fromStranger.close(), withCertificate.close()]);
    }
    // A sidecar without one cannot decide: 503, and the app is not reached.
    const sidecar = await spawnSidecar({
      upstream: upstream.url,
      tokenServiceUrl: grpcUrl(),
      env: { LATCHKEY_TOKEN_SERVICE_CA_FILE: pki.caFile },
    });
    try {
      const response = await send(sidecar.url, "GET", "/no-client-cert", {
        authorization: `Bearer ${token}`,
      });
      expect(response.status).toBe(503);
      expect(upstream.seen).not.toContain("/no-client-cert");
    } finally {
      await sidecar.stop();
    }
  });

  it("the import command presents LATCHKEY_TOKEN_SERVICE_CLIENT_CERT/_KEY; without them it is refused, and half a pair is an error", async () => {
    const row = (n: number) =>
      `${JSON.stringify({ externalId: `mtls-${n}`, teamId, name: `imported ${n}`, token: generateToken({ prefix: "lk", environment: "live" }) })}\n`;
    const base = { url: grpcUrl(), adminKey: ROOT_KEY };
    const tls = { LATCHKEY_TOKEN_SERVICE_CA_FILE: pki.caFile };
    const withCertificate = await runImportCommand(["-"], {
      ...base,
      stdin: row(1),
      env: {
        ...tls,
        LATCHKEY_TOKEN_SERVICE_CLIENT_CERT: client.certFile,
        LATCHKEY_TOKEN_SERVICE_CLIENT_KEY: client.keyFile,
      },
    });
    expect(withCertificate.stdout).toBe("imported 1, already there 0, bad rows 0 (of 1 rows read)\n");
    expect(withCertificate.code).toBe(0);

    const without = await runImportCommand(["-"], { ...base, stdin: row(2), env: tls });
    expect(without.code).not.toBe(0);
    expect(without.stdout).not.toMatch(/imported 1/);

    const half = await runImportCommand(["-"], {
      ...base,
      stdin: row(3),
      env: { ...tls, LATCHKEY_TOKEN_SERVICE_CLIENT_CERT: client.certFile },
    });
    expect(half.code).toBe(2);
    expect(half.stderr).toContain(
      "set both LATCHKEY_TOKEN_SERVICE_CLIENT_CERT and LATCHKEY_TOKEN_SERVICE_CLIENT_KEY",
    );
    const cleartext = await runImportCommand(["-"], {
      url: `http://127.0.0.1:${service.handle.grpcPort}`,
      adminKey: ROOT_KEY,
      stdin: row(4),
      env: {
        LATCHKEY_TOKEN_SERVICE_CLIENT_CERT: client.certFile,
        LATCHKEY_TOKEN_SERVICE_CLIENT_KEY: client.keyFile,
      },
    });
    expect(cleartext.code).toBe(2);
    expect(cleartext.stderr).toContain("needs an https:// token-service URL");
    const missing = await runImportCommand(["-"], {
      ...base,
      stdin: row(5),
      env: {
        ...tls,
        LATCHKEY_TOKEN_SERVICE_CLIENT_CERT: `${pki.dir}/nope.crt`,
        LATCHKEY_TOKEN_SERVICE_CLIENT_KEY: client.keyFile,
      },
    });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("LATCHKEY_TOKEN_SERVICE_CLIENT_CERT: cannot read");
  });

  it("leaves the cleartext health port open to kubelet probes, which have no certificate", async () => {
    const health = createClient(
      Health,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${service.handle.healthPort}` }),
    );
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it("stops start-up when LATCHKEY_GRPC_CLIENT_CA_FILE cannot be read, naming it", async () => {
    const config = testConfig({
      databaseUrl: await freshDatabaseUrl("mtlsbad"),
      settings: {
        tlsCert: `${pki.dir}/token-service.crt`,
        tlsKey: `${pki.dir}/token-service.key`,
        grpcClientCaFile: `${pki.dir}/no-such-ca.crt`,
      },
    });
    const error = await startTokenService(config, { logger: pino({ level: "silent" }) }).then(
      async (started) => {
        await started.close();
        return undefined;
      },
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).settings).toEqual(["LATCHKEY_GRPC_CLIENT_CA_FILE"]);
  });

  it("stops a sidecar whose client certificate setting cannot work, naming it", async () => {
    const base = { LATCHKEY_UPSTREAM: upstream.url };
    const cases: Array<[Record<string, string>, string]> = [
      [
        {
          LATCHKEY_TOKEN_SERVICE_URL: "http://127.0.0.1:8082",
          LATCHKEY_TOKEN_SERVICE_CLIENT_CERT: client.certFile,
          LATCHKEY_TOKEN_SERVICE_CLIENT_KEY: client.keyFile,
        },
        "LATCHKEY_TOKEN_SERVICE_CLIENT_CERT",
      ],
      [
        {
          LATCHKEY_TOKEN_SERVICE_URL: "https://127.0.0.1:8082",
          LATCHKEY_TOKEN_SERVICE_CLIENT_CERT: client.certFile,
        },
        "LATCHKEY_TOKEN_SERVICE_CLIENT_KEY",
      ],
    ];
    for (const [env, variable] of cases) {
      expect(() => loadSidecarConfig({ ...base, ...env })).toThrow(variable);
    }
    // The key of another certificate: refused at start, before the sidecar ever connects.
    const { code, output } = await sidecarExit({
      upstream: upstream.url,
      tokenServiceUrl: grpcUrl(),
      env: {
        LATCHKEY_TOKEN_SERVICE_CLIENT_CERT: client.certFile,
        LATCHKEY_TOKEN_SERVICE_CLIENT_KEY: strangerClient.keyFile,
      },
    });
    expect(code).toBe(2);
    expect(output).toContain("LATCHKEY_TOKEN_SERVICE_CLIENT_KEY");
  });
});
