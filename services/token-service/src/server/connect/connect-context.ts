import {
  type ContextValues,
  createContextKey,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import { REQUEST_ID_HEADER, resolveRequestId } from "../shared/request-id.js";
import type { RpcContext, RpcProtocol } from "../shared/rpc-context.js";

/** Per-call facts the node layer knows before connect takes over. */
export interface CallInfo {
  readonly requestId: string;
  readonly peer?: string;
}

const callInfoKey = createContextKey<CallInfo | undefined>(undefined, { description: "latchkey call info" });

/** Context values carrying a call's {@link CallInfo} to interceptors and handlers. */
export function contextValuesFor(info: CallInfo): ContextValues {
  return createContextValues().set(callInfoKey, info);
}

/**
 * The call's {@link CallInfo}. Calls that did not come through the node layer
 * (an in-memory router transport) get a fresh request id, fixed for the call.
 */
export function callInfoOf(values: ContextValues): CallInfo {
  const known = values.get(callInfoKey);
  if (known !== undefined) {
    return known;
  }
  const info: CallInfo = { requestId: resolveRequestId(undefined) };
  values.set(callInfoKey, info);
  return info;
}

/** The narrow {@link RpcContext} of a connect call. */
export function rpcContextOf(context: HandlerContext): RpcContext {
  const { requestId, peer } = callInfoOf(context.values);
  // Also set here so in-memory transports, which skip the node layer, echo it too.
  context.responseHeader.set(REQUEST_ID_HEADER, requestId);
  return {
    requestHeader: context.requestHeader,
    signal: context.signal,
    requestId,
    protocol: protocolOf(context.protocolName),
    ...(peer === undefined ? {} : { peer }),
  };
}

function protocolOf(name: string): RpcProtocol {
  switch (name) {
    case "grpc":
    case "grpc-web":
      return name;
    default:
      return "connect";
  }
}
