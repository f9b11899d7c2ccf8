import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { methodImplementation, type ServiceRegistration } from "../shared/service-registration.js";
import { rpcContextOf } from "./connect-context.js";

/**
 * Routes for connect-node: each registration's methods, called with an
 * {@link RpcContext} made from connect's `HandlerContext`.
 *
 * @example
 * ```ts
 * const handler = connectNodeAdapter({ routes: connectRoutes([teams, health]) });
 * ```
 */
export function connectRoutes(
  registrations: readonly ServiceRegistration[],
): (router: ConnectRouter) => void {
  return (router) => {
    for (const registration of registrations) {
      router.service(registration.service, adapt(registration));
    }
  };
}

function adapt(registration: ServiceRegistration): ServiceImpl<DescService> {
  const adapted: Record<string, unknown> = {};
  for (const method of registration.service.methods) {
    const impl = methodImplementation(registration, method);
    // Every method kind has the shape (input, context) => output, where input
    // and output are a message, a promise or an async iterable alike, so one
    // wrapper that swaps the context serves all four kinds.
    adapted[method.localName] = (input: unknown, context: HandlerContext) =>
      impl(input, rpcContextOf(context));
  }
  // connect types the implementation per method of a concrete service; ours is
  // keyed the same way (localName) but typed by ServiceRegistration instead.
  return adapted as ServiceImpl<DescService>;
}
