import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TeamService, TokenService } from "@latchkey/proto";

/** A root-key admin client for benchmarks (Connect's gRPC transport over h2c). */
export function adminClients(baseUrl: string, rootKey: string) {
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: [
      (next) => async (request) => {
        request.header.set("authorization", `Bearer ${rootKey}`);
        return next(request);
      },
    ],
  });
  return { tokens: createClient(TokenService, transport), teams: createClient(TeamService, transport) };
}
