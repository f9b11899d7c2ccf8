// Issue 17, defect 5 (Verify): raw keys cross the network only over TLS. The
// token-service serves its gRPC listeners with a certificate signed by a CA
// (as cert-manager issues it); the sidecar reaches it at an https:// URL and
// trusts that CA through LATCHKEY_TOKEN_SERVICE_CA_FILE. Kubelet gRPC probes
// cannot speak TLS, so LATCHKEY_HEALTH_LISTEN serves grpc.health.v1 alone in
// cleartext, and nothing that carries a key.
import { readFileSync } from "node:fs";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConfigError } from "@latchkey/config";
import { TokenService, VerifyResult } from "@latchkey/proto";
import { Health, HealthCheckResponse_ServingStatus } from "@latchkey/proto/grpc";
import { type SidecarHandle, startSidecar } from "@latchkey/sidecar";
import { createVerifier } from "@latchkey/verifier";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSidecarConfig } from "../../services/sidecar/src/config.js";
import { createTestPki, type TestPki } from "../harness/index.js";
import { type RecordingUpstream, startRecordingUpstream } from "../sidecar/recording-upstream.js";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

describe("Verify over TLS, with a cleartext health port", () => {
  let pki: TestPki;
  let otherPki: TestPki;
  let service: TestService;
  let upstream: RecordingUpstream;
  const sidecars: SidecarHandle[] = [];
  let token: string;

  beforeAll(async () => {
    pki = await createTestPki("token-service");
    otherPki = await createTestPki("stranger");
    const { certFile, keyFile } = await pki.issue("token-service", ["IP:127.0.0.1", "DNS:localhost"]);
    service = await startTestService({
      settings: { tlsCert: certFile, tlsKey: keyFile, healthListen: "127.0.0.1:0" },
    });
    upstream = await startRecordingUpstream();
    const secure = secureGrpc(service.handle.grpcPort);
    const teamId = (await service.teams(undefined, secure).createTeam({ name: "tls" })).team?.id ?? "";
    ({ token } = await service.tokens(undefined, secure).issue({
      teamId,
      name: "over-tls",
      scopes: ["read"],
    }));
  });
  afterAll(async () => {
    for (const sidecar of sidecars) await sidecar.close();
    await upstream?.app.close();
    await service?.close();
    pki?.dispose();
    otherPki?.dispose();
  });

  const secureGrpc = (port: number) =>
    createGrpcTransport({
      baseUrl: `https://127.0.0.1:${port}`,
      nodeOptions: { ca: readFileSync(pki.caFile) },
    });

  async function sidecarTrusting(caFile: string): Promise<SidecarHandle> {
    const config = loadSidecarConfig({
      LATCHKEY_SIDECAR_LISTEN: "127.0.0.1:0",
      LATCHKEY_SIDECAR_ADMIN_LISTEN: "127.0.0.1:0",
      LATCHKEY_UPSTREAM: upstream.url,
      LATCHKEY_TOKEN_SERVICE_URL: `https://127.0.0.1:${service.handle.grpcPort}`,
      LATCHKEY_TOKEN_SERVICE_CA_FILE: caFile,
      LATCHKEY_LOG_LEVEL: "silent",
    });
    const sidecar = await startSidecar(config, { logger: pino({ level: "silent" }) });
    sidecars.push(sidecar);
    return sidecar;
  }

  it("the sidecar verifies keys over TLS when it trusts the token-service's CA", async () => {
    const sidecar = await sidecarTrusting(pki.caFile);
    const response = await fetch(`http://127.0.0.1:${sidecar.port}/orders`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(200);
    expect(upstream.seen).toContain("/orders");
  });

  it("refuses a token-service whose certificate another CA signed: the key is never sent", async () => {
    const sidecar = await sidecarTrusting(otherPki.caFile);
    const response = await fetch(`http://127.0.0.1:${sidecar.port}/refused`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(503);
    expect(upstream.seen).not.toContain("/refused");
    const verifier = createVerifier({
      tokenService: `https://127.0.0.1:${service.handle.grpcPort}`,
      grpc: { tls: { rootCerts: readFileSync(otherPki.caFile) } },
    });
    try {
      const outcome = await verifier.verify(token);
      expect(outcome).toMatchObject({ ok: false, code: "UNAVAILABLE" });
    } finally {
      await verifier.close();
    }
  });

  it("the verifier SDK trusts a CA given as grpc.tls.rootCerts", async () => {
    const verifier = createVerifier({
      tokenService: `https://127.0.0.1:${service.handle.grpcPort}`,
      grpc: { tls: { rootCerts: readFileSync(pki.caFile) } },
    });
    try {
      expect(await verifier.verify(token)).toMatchObject({ ok: true });
    } finally {
      await verifier.close();
    }
  });

  it("reached by IP address, checks that the certificate names that address (not only a host name)", async () => {
    // grpc-js cannot send an IP as the TLS server name on Node 26; the client sends a placeholder
    // name and still checks the certificate against the IP it dialled.
    const { certFile, keyFile } = await pki.issue("localhost-only", ["DNS:localhost"]);
    const named = await startTestService({ settings: { tlsCert: certFile, tlsKey: keyFile } });
    const rootCerts = readFileSync(pki.caFile);
    const byIp = createVerifier({
      tokenService: `https://127.0.0.1:${named.handle.grpcPort}`,
      grpc: { tls: { rootCerts } },
    });
    const byName = createVerifier({
      tokenService: `https://localhost:${named.handle.grpcPort}`,
      grpc: { tls: { rootCerts } },
    });
    try {
      expect(await byIp.verify(token)).toMatchObject({ ok: false, code: "UNAVAILABLE" });
      // Past the handshake: the key is unknown to this service's database, which is an answer.
      expect(await byName.verify(token)).toMatchObject({ ok: false, code: "NOT_FOUND" });
    } finally {
      await byIp.close();
      await byName.close();
      await named.close();
    }
  });

  it("answers grpc.health.v1 in cleartext on the health port, and nothing else there", async () => {
    const cleartext = createGrpcTransport({ baseUrl: `http://127.0.0.1:${service.handle.healthPort}` });
    const health = createClient(Health, cleartext);
    for (const name of ["", "latchkey.v1.TokenService"]) {
      expect((await health.check({ service: name })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    }
    const verify = await rpcError(createClient(TokenService, cleartext).verify({ token }));
    expect(verify.code).toBe(Code.Unimplemented);
    // The RPC port itself refuses cleartext.
    const plain = createGrpcTransport({ baseUrl: `http://127.0.0.1:${service.handle.grpcPort}` });
    const refused = await rpcError(createClient(TokenService, plain).verify({ token }, { timeoutMs: 3_000 }));
    expect(refused).toBeInstanceOf(ConnectError);
    expect(refused.code).not.toBe(Code.DeadlineExceeded);
    // And over TLS the same key verifies.
    const secure = createClient(TokenService, secureGrpc(service.handle.grpcPort));
    expect((await secure.verify({ token })).result).toBe(VerifyResult.VALID);
  });

  it("stops a sidecar whose CA setting cannot work, naming LATCHKEY_TOKEN_SERVICE_CA_FILE", async () => {
    const withHttp = () =>
      loadSidecarConfig({
        LATCHKEY_UPSTREAM: upstream.url,
        LATCHKEY_TOKEN_SERVICE_URL: "http://127.0.0.1:8082",
        LATCHKEY_TOKEN_SERVICE_CA_FILE: pki.caFile,
      });
    expect(withHttp).toThrow(ConfigError);
    expect(withHttp).toThrow(/LATCHKEY_TOKEN_SERVICE_CA_FILE/);
    const missing = loadSidecarConfig({
      LATCHKEY_SIDECAR_LISTEN: "127.0.0.1:0",
      LATCHKEY_SIDECAR_ADMIN_LISTEN: "127.0.0.1:0",
      LATCHKEY_UPSTREAM: upstream.url,
      LATCHKEY_TOKEN_SERVICE_URL: "https://127.0.0.1:8082",
      LATCHKEY_TOKEN_SERVICE_CA_FILE: `${pki.dir}/no-such-ca.pem`,
    });
    const error = await startSidecar(missing, { logger: pino({ level: "silent" }) }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).settings).toEqual(["LATCHKEY_TOKEN_SERVICE_CA_FILE"]);
  });
});
