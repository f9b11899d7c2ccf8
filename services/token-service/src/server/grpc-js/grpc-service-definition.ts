import { once } from "node:events";
import type { Readable, Writable } from "node:stream";
import {
  create,
  type DescMessage,
  type DescMethod,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type {
  ServerDuplexStream,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  sendUnaryData,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { TRACEPARENT, TRACESTATE, tracingEnabled } from "@latchkey/telemetry";
import { context } from "@opentelemetry/api";
import { serializeMessage } from "../shared/immutable-message.js";
import { endRpcSpan, isTraced, startRpcSpan } from "../shared/rpc-span.js";
import { methodImplementation, type ServiceRegistration } from "../shared/service-registration.js";
import { type GrpcCall, type GrpcCallScope, startGrpcCall } from "./grpc-call.js";

type AnyMessage = MessageShape<DescMessage>;

/** A registration as grpc-js wants it: a service definition and its handlers. */
export interface GrpcService {
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
}

/**
 * Translates a registration for grpc-js: protobuf-es `toBinary`/`fromBinary`
 * as the (de)serializers, and a handler per method that calls the
 * implementation with an {@link RpcContext}.
 */
export function grpcService(registration: ServiceRegistration, scope: GrpcCallScope): GrpcService {
  const definition: Record<string, ServiceDefinition[string]> = {};
  const implementation: UntypedServiceImplementation = {};
  for (const method of registration.service.methods) {
    const streamsRequests =
      method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
    const streamsResponses =
      method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
    // Made once per method: the response serializer runs per call and must
    // not make a closure each time.
    const encodeOutput = (message: AnyMessage) => asBuffer(toBinary(method.output, message));
    definition[method.localName] = {
      path: `/${registration.service.typeName}/${method.name}`,
      requestStream: streamsRequests,
      responseStream: streamsResponses,
      requestSerialize: (message: AnyMessage) => asBuffer(toBinary(method.input, message)),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      // A cached answer (marked immutable) was serialized once: its bytes are reused.
      responseSerialize: (message: AnyMessage) => serializeMessage(message, encodeOutput),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
      originalName: method.localName,
    };
    implementation[method.localName] = handlerFor(registration, method, scope);
  }
  return { definition, implementation };
}

function handlerFor(
  registration: ServiceRegistration,
  method: DescMethod,
  scope: GrpcCallScope,
): UntypedHandleCall {
  const impl = methodImplementation(registration, method);
  const procedure = `${registration.service.typeName}/${method.name}`;
  const traced = tracingEnabled() && isTraced(registration.service.typeName);
  // Implementations may return init shapes; grpc-js needs the message itself.
  const toOutput = (init: unknown) => create(method.output, init as MessageInitShape<DescMessage>);

  // Unary calls are the hot path (Verify): no per-call closures, and a
  // synchronous result (a cache hit) is answered without a promise.
  const unary = (
    call: ServerUnaryCall<AnyMessage, AnyMessage> | ServerReadableStream<AnyMessage, AnyMessage>,
    callback: sendUnaryData<AnyMessage>,
  ) => {
    const rpc = startGrpcCall(call, procedure, scope);
    let result: unknown;
    try {
      const input = "request" in call ? call.request : requestsOf(call, rpc.context.signal);
      result = impl(input, rpc.context);
    } catch (error) {
      callback(rpc.failed(error));
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value: unknown) => answer(rpc, callback, toOutput(value)),
        (error: unknown) => callback(rpc.failed(error)),
      );
    } else {
      answer(rpc, callback, toOutput(result));
    }
  };
  // With tracing on (read once): a server span per call, continuing the caller's `traceparent`, with
  // the handler run in its context so its database spans and log lines belong to it.
  const tracedUnary = (
    call: ServerUnaryCall<AnyMessage, AnyMessage> | ServerReadableStream<AnyMessage, AnyMessage>,
    callback: sendUnaryData<AnyMessage>,
  ) => {
    const parents = call.metadata.get(TRACEPARENT);
    const { span, context: ctx } = startRpcSpan(
      procedure,
      "grpc-native",
      parents.length === 1 && typeof parents[0] === "string" ? parents[0] : undefined,
      call.metadata.get(TRACESTATE).join(","),
    );
    const finished: sendUnaryData<AnyMessage> = (error, ...rest) => {
      endRpcSpan(span, error === null ? 0 : ((error.code ?? Code.Internal) as number as Code));
      callback(error, ...rest);
    };
    context.with(ctx, unary, undefined, call, finished);
  };
  const streaming = (
    call: ServerWritableStream<AnyMessage, AnyMessage> | ServerDuplexStream<AnyMessage, AnyMessage>,
    input: (signal: AbortSignal) => unknown,
  ) => {
    const rpc = startGrpcCall(call, procedure, scope);
    const { signal } = rpc.context;
    // Inside an async function, so a synchronous throw is mapped like any other.
    (async () =>
      writeAll(call, impl(input(signal), rpc.context) as AsyncIterable<unknown>, toOutput, signal))().then(
      () => {
        rpc.succeeded();
        call.end();
      },
      (error: unknown) => call.emit("error", rpc.failed(error)),
    );
  };

  switch (method.methodKind) {
    case "unary":
      if (traced)
        return (call: ServerUnaryCall<AnyMessage, AnyMessage>, callback: sendUnaryData<AnyMessage>) =>
          tracedUnary(call, callback);
      return (call: ServerUnaryCall<AnyMessage, AnyMessage>, callback: sendUnaryData<AnyMessage>) =>
        unary(call, callback);
    case "client_streaming":
      return (call: ServerReadableStream<AnyMessage, AnyMessage>, callback: sendUnaryData<AnyMessage>) =>
        traced ? tracedUnary(call, callback) : unary(call, callback);
    case "server_streaming":
      return (call: ServerWritableStream<AnyMessage, AnyMessage>) => streaming(call, () => call.request);
    case "bidi_streaming":
      return (call: ServerDuplexStream<AnyMessage, AnyMessage>) =>
        streaming(call, (signal) => requestsOf(call, signal));
  }
}

/** The request stream of a call; a cancelled call ends it with the cancellation. */
async function* requestsOf(call: Readable, signal: AbortSignal): AsyncIterable<unknown> {
  try {
    // Not destroyOnReturn: an implementation that stops reading early must
    // still be able to answer on the same (duplex) call.
    yield* call.iterator({ destroyOnReturn: false });
  } catch (error) {
    signal.throwIfAborted();
    throw error;
  }
}

async function writeAll(
  call: Writable,
  outputs: AsyncIterable<unknown>,
  toOutput: (init: unknown) => AnyMessage,
  signal: AbortSignal,
): Promise<void> {
  for await (const output of outputs) {
    signal.throwIfAborted();
    if (!call.write(toOutput(output))) {
      await once(call, "drain", { signal });
    }
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function answer(rpc: GrpcCall, callback: sendUnaryData<AnyMessage>, output: AnyMessage): void {
  rpc.succeeded();
  callback(null, output);
}
