/**
 * The wire protocol a call arrived on: the three that connect-node speaks on
 * the main listener, or `grpc-native` for the grpc-js listener.
 */
export type RpcProtocol = "connect" | "grpc" | "grpc-web" | "grpc-native";

/**
 * What an RPC implementation may know about its call. Deliberately narrower
 * than connect's `HandlerContext` so that one implementation serves both the
 * connect-node listener and the grpc-js listener.
 */
export interface RpcContext {
  /** Request headers (gRPC metadata on the grpc-js listener; binary `-bin` entries are left out). */
  readonly requestHeader: Headers;
  /** Aborts when the client cancels, the deadline passes, the call ends, or the server is forced down. */
  readonly signal: AbortSignal;
  /** The caller's `x-request-id` when it is sane, otherwise a fresh one; echoed in the response. */
  readonly requestId: string;
  readonly protocol: RpcProtocol;
  /** The remote address, when the transport knows it. */
  readonly peer?: string;
}
