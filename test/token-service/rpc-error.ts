import { ConnectError } from "@connectrpc/connect";

/**
 * The ConnectError a call failed with; fails the test when the call succeeds.
 *
 * @example
 * ```ts
 * const error = await rpcError(client.get({ keyId: "nope" }));
 * expect(error.code).toBe(Code.InvalidArgument);
 * ```
 */
export async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail, but it succeeded");
}
