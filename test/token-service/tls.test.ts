// TLS on both listeners when LATCHKEY_TLS_CERT and LATCHKEY_TLS_KEY are set.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { TokenService, VerifyResult } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!hasOpenssl)("with a certificate and key", () => {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  let service: TestService;
  let ca: Buffer;
  const secureConnect = () =>
    createConnectTransport({
      baseUrl: `https://127.0.0.1:${service.handle.port}`,
      httpVersion: "2",
      nodeOptions: { ca },
    });
  beforeAll(async () => {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
        .concat(["-keyout", keyFile, "-out", certFile, "-subj", "/CN=localhost"])
        .concat(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]),
      { stdio: "ignore" },
    );
    ca = readFileSync(certFile);
    service = await startTestService({ settings: { tlsCert: certFile, tlsKey: keyFile } });
  });
  afterAll(async () => {
    await service?.close();
    rmSync(dir, { recursive: true, force: true });
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
