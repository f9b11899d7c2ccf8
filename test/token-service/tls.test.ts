// TLS on both listeners when LATCHKEY_TLS_CERT and LATCHKEY_TLS_KEY are set.
import { readFileSync } from "node:fs";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { TokenService, VerifyResult } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestPki, type TestPki } from "../harness/index.js";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

describe("with a certificate and key", () => {
  let pki: TestPki;
  let service: TestService;
  let ca: Buffer;
  const secureConnect = () =>
    createConnectTransport({
      baseUrl: `https://127.0.0.1:${service.handle.port}`,
      httpVersion: "2",
      nodeOptions: { ca },
    });
  beforeAll(async () => {
    pki = await createTestPki("tls");
    const { certFile, keyFile } = await pki.issue("token-service", ["IP:127.0.0.1", "DNS:localhost"]);
    ca = readFileSync(pki.caFile);
    service = await startTestService({ settings: { tlsCert: certFile, tlsKey: keyFile } });
  });
  afterAll(async () => {
    await service?.close();
    pki?.dispose();
  });

  it.each(["connect", "grpc-native"])(
    "serves Verify over TLS on the %s listener, and refuses cleartext",
    async (which) => {
      const port = which === "connect" ? service.handle.port : service.handle.grpcPort;
      const secure =
        which === "connect"
          ? createConnectTransport({
              baseUrl: `https://127.0.0.1:${port}`,
              httpVersion: "2",
              nodeOptions: { ca },
            })
          : createGrpcTransport({ baseUrl: `https://127.0.0.1:${port}`, nodeOptions: { ca } });
      const teamId =
        (await service.teams(undefined, secureConnect()).createTeam({ name: `tls-${which}` })).team?.id ?? "";
      const { token } = await service.tokens(undefined, secure).issue({ teamId, name: "over-tls" });
      expect((await createClient(TokenService, secure).verify({ token })).result).toBe(VerifyResult.VALID);
      const cleartext = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
      // However the client words it, a cleartext call to a TLS listener fails.
      const error = await rpcError(
        createClient(TokenService, cleartext).verify({ token }, { timeoutMs: 3_000 }),
      );
      expect(error.code).not.toBe(Code.DeadlineExceeded);
    },
  );
});
