import type {
  DescMessage,
  DescMethod,
  DescMethodBiDiStreaming,
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { RpcContext } from "./rpc-context.js";

/**
 * A unary RPC: one request, one response (a message or its init shape). It may
 * answer synchronously (a cache hit), which saves a promise per call.
 */
export type UnaryImplementation<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: RpcContext,
) => Promise<MessageInitShape<O>> | MessageInitShape<O>;

/** A server-streaming RPC: one request, a stream of responses. */
export type ServerStreamingImplementation<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: RpcContext,
) => AsyncIterable<MessageInitShape<O>>;

/** A client-streaming RPC: a stream of requests, one response. */
export type ClientStreamingImplementation<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  context: RpcContext,
) => Promise<MessageInitShape<O>>;

/** A bidi-streaming RPC: a stream of requests, a stream of responses. */
export type BiDiStreamingImplementation<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  context: RpcContext,
) => AsyncIterable<MessageInitShape<O>>;

/** The implementation of one method, chosen by the method's kind. */
export type MethodImplementation<M extends DescMethod> =
  M extends DescMethodUnary<infer I, infer O>
    ? UnaryImplementation<I, O>
    : M extends DescMethodServerStreaming<infer I, infer O>
      ? ServerStreamingImplementation<I, O>
      : M extends DescMethodClientStreaming<infer I, infer O>
        ? ClientStreamingImplementation<I, O>
        : M extends DescMethodBiDiStreaming<infer I, infer O>
          ? BiDiStreamingImplementation<I, O>
          : never;

/**
 * A whole service, written once against {@link RpcContext} and served by both
 * listeners. Every method is required: a forgotten one is a compile error, not
 * an `UNIMPLEMENTED` in production.
 */
export type ServiceImplementation<S extends DescService> = {
  readonly [P in keyof S["method"]]: MethodImplementation<S["method"][P]>;
};

/**
 * A method implementation with its types erased, as the servers call it. The
 * servers only pass it messages of the method's own input schema.
 */
export type AnyMethodImplementation = (input: never, context: RpcContext) => unknown;

/** A service descriptor with its implementation, ready for either server. */
export interface ServiceRegistration {
  readonly service: DescService;
  /** Keyed by `DescMethod.localName`. */
  readonly implementation: Readonly<Record<string, AnyMethodImplementation>>;
}

/**
 * Pairs a generated service descriptor with its implementation, checking the
 * implementation against the descriptor's method types.
 *
 * @example
 * ```ts
 * const teams = registerService(TeamService, {
 *   async createTeam(request, ctx) { ... },
 *   async listTeams(request, ctx) { ... },
 * });
 * createConnectServer({ services: [teams], ... });
 * ```
 */
export function registerService<S extends DescService>(
  service: S,
  implementation: ServiceImplementation<S>,
): ServiceRegistration {
  for (const method of service.methods) {
    if (typeof (implementation as Record<string, unknown>)[method.localName] !== "function") {
      throw new Error(`${service.typeName}: no implementation for ${method.name}`);
    }
  }
  return { service, implementation: implementation as Readonly<Record<string, AnyMethodImplementation>> };
}

/** The implementation of `method` in `registration`, with its types erased. */
export function methodImplementation(
  registration: ServiceRegistration,
  method: DescMethod,
): (input: unknown, context: RpcContext) => unknown {
  const impl = registration.implementation[method.localName];
  if (impl === undefined) {
    throw new Error(`${registration.service.typeName}: no implementation for ${method.name}`);
  }
  // The servers decode input with `method.input`, so the erased type holds.
  // Bound, so an implementation written as a class instance keeps its `this`.
  return (impl as (input: unknown, context: RpcContext) => unknown).bind(registration.implementation);
}
