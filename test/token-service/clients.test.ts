// Every kind of client the issue names, each through a real listener:
// Issue → Verify (valid) → Revoke → Verify (revoked).
import { Code } from "@connectrpc/connect";
import { credentials, loadPackageDefinition, Metadata, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { VerifyResult } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError } from "./rpc-error.js";
import { ROOT_KEY, startTestService, type TestService, transportsFor } from "./start.js";

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(() => service?.close());

describe.each(["connect", "grpc", "grpc-web", "grpc-native"])("a Connect-ES client over %s", (protocol) => {
  it("issues, verifies, revokes and then sees the key revoked", async () => {
    const transport = transportsFor(service)[protocol];
    if (!transport) throw new Error(protocol);
    const teams = service.teams(ROOT_KEY, transport);
    const tokens = service.tokens(ROOT_KEY, transport);
    const { team } = await teams.createTeam({ name: `clients-${protocol}` });
    const issued = await tokens.issue({ teamId: team?.id ?? "", name: "walkthrough", scopes: ["read"] });
    expect(issued.token).toMatch(/^lk_live_/);

    const valid = await tokens.verify({ token: issued.token, requiredScopes: ["read"] });
    expect(valid.result).toBe(VerifyResult.VALID);
    expect(valid.key?.id).toBe(issued.key?.id);
    expect(valid.key?.teamId).toBe(team?.id);

    const revoked = await tokens.revoke({ keyId: issued.key?.id ?? "", reason: "walkthrough" });
    expect(revoked.key?.revokeTime).toBeDefined();
    expect(revoked.key?.revokeReason).toBe("walkthrough");

    const after = await tokens.verify({ token: issued.token });
    expect(after.result).toBe(VerifyResult.REVOKED);
    expect(after.key).toBeUndefined();
  });

  it("refuses an admin call without credentials", async () => {
    const transport = transportsFor(service)[protocol];
    if (!transport) throw new Error(protocol);
    const error = await rpcError(service.teams(null, transport).listTeams({}));
    expect(error.code).toBe(Code.Unauthenticated);
  });
});

// The client a Node service without Connect would write: grpc-js with the
// .proto files loaded at run time by proto-loader.
interface GrpcJsClient {
  [method: string]: (
    request: object,
    metadata: Metadata,
    callback: (error: (Error & { code: number }) | null, response: Record<string, unknown>) => void,
  ) => void;
}

function loadGrpcJsClients(address: string) {
  const definition = loadSync(["latchkey/v1/token_service.proto", "latchkey/v1/team.proto"], {
    includeDirs: ["proto"],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = loadPackageDefinition(definition) as unknown as {
    latchkey: { v1: { TokenService: ServiceClientConstructor; TeamService: ServiceClientConstructor } };
  };
  const insecure = credentials.createInsecure();
  const tokens = new loaded.latchkey.v1.TokenService(address, insecure) as unknown as GrpcJsClient;
  const teams = new loaded.latchkey.v1.TeamService(address, insecure) as unknown as GrpcJsClient;
  return {
    tokens,
    teams,
    close: () => {
      for (const client of [tokens, teams]) (client as unknown as { close(): void }).close();
    },
  };
}

function call(client: GrpcJsClient, method: string, request: object, bearer?: string) {
  const metadata = new Metadata();
  if (bearer) metadata.set("authorization", `Bearer ${bearer}`);
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const fn = client[method];
    if (!fn) throw new Error(`no method ${method}`);
    fn.call(client, request, metadata, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

describe.each(["grpc port", "connect port"])(
  "a @grpc/grpc-js client with proto-loader on the %s",
  (which) => {
    it("issues, verifies, revokes and then sees the key revoked", async () => {
      const port = which === "grpc port" ? service.handle.grpcPort : service.handle.port;
      const { tokens, teams, close } = loadGrpcJsClients(`127.0.0.1:${port}`);
      try {
        const created = await call(teams, "createTeam", { name: `grpc-js-${port}` }, ROOT_KEY);
        const teamId = (created.team as { id: string }).id;
        const issued = await call(tokens, "issue", { teamId, name: "grpc-js", scopes: ["write"] }, ROOT_KEY);
        const token = issued.token as string;
        const keyId = (issued.key as { id: string }).id;

        const valid = await call(tokens, "verify", { token, requiredScopes: ["read"] });
        expect(valid.result).toBe("VERIFY_RESULT_VALID");
        expect((valid.key as { id: string }).id).toBe(keyId);

        await call(tokens, "revoke", { keyId }, ROOT_KEY);
        const after = await call(tokens, "verify", { token });
        expect(after.result).toBe("VERIFY_RESULT_REVOKED");

        const refused = await call(tokens, "get", { keyId }).catch((error: { code: number }) => error);
        expect((refused as { code: number }).code).toBe(Code.Unauthenticated);
      } finally {
        close();
      }
    });
  },
);
