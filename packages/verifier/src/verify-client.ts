import { createClient, type Transport } from "@connectrpc/connect";
import { TokenService, type VerifyRequest, type VerifyResponse } from "@latchkey/proto";

/**
 * Per-call options of {@link VerifyClient.verify}.
 *
 * @example
 * ```ts
 * await client.verify(request, { timeoutMs: 2_000, signal });
 * ```
 */
export interface VerifyCallOptions {
  /** Deadline of the call, in ms. */
  readonly timeoutMs: number;
  /** Cancels the call. */
  readonly signal?: AbortSignal;
  /** Extra request metadata (the W3C `traceparent`/`tracestate` of the call's span). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * One Verify RPC, whatever carries it.
 *
 * @example
 * ```ts
 * const client: VerifyClient = createGrpcJsVerifyClient({ address: "token-service:8082" });
 * const { result } = await client.verify(create(VerifyRequestSchema, { token }), { timeoutMs: 2_000 });
 * ```
 * Failures reject with a `ConnectError`
 * whose `code` is the gRPC status (Unavailable, DeadlineExceeded, …); a key
 * that fails verification is a resolved response with a result code.
 */
export interface VerifyClient {
  /** Calls `latchkey.v1.TokenService/Verify`. */
  verify(request: VerifyRequest, options: VerifyCallOptions): Promise<VerifyResponse>;
  /** Releases connections the client owns. */
  close(): void;
}

/**
 * A {@link VerifyClient} over a Connect transport: `createGrpcTransport` or
 * `createConnectTransport` from `@connectrpc/connect-node`, or
 * `createRouterTransport` in tests. The native grpc-js client
 * ({@link createGrpcJsVerifyClient}) is faster; use this one when you need
 * Connect's protocol, interceptors or an in-memory transport.
 *
 * @example
 * ```ts
 * import { createGrpcTransport } from "@connectrpc/connect-node";
 * const client = createConnectVerifyClient(createGrpcTransport({ baseUrl: "http://token-service:8081" }));
 * const verifier = createVerifier({ client });
 * ```
 */
export function createConnectVerifyClient(transport: Transport): VerifyClient {
  const client = createClient(TokenService, transport);
  return {
    verify(request, options) {
      return client.verify(request, {
        timeoutMs: options.timeoutMs,
        signal: options.signal,
        ...(options.headers === undefined ? {} : { headers: options.headers }),
      });
    },
    close() {
      // The transport belongs to the caller.
    },
  };
}
