import { isIP } from "node:net";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
} from "@grpc/grpc-js";
import type { ListenAddress } from "@latchkey/config";
import {
  Authorization,
  type CheckRequest,
  CheckRequestSchema,
  type CheckResponse,
  CheckResponseSchema,
} from "@latchkey/proto/envoy";
import type { Logger } from "pino";
import type { CheckHandler } from "./check-handler.js";
import { extAuthzHealth } from "./ext-authz-health.js";

/**
 * Largest CheckRequest accepted. Envoy's request headers are at most 60 KiB by
 * default (`max_request_headers_kb`); Latchkey needs no body, so
 * `with_request_body` should stay off. Larger requests get RESOURCE_EXHAUSTED,
 * which Envoy treats as an error (denied unless `failure_mode_allow`).
 */
export const MAX_CHECK_REQUEST_BYTES = 1024 * 1024;

/** Options of {@link startExtAuthzServer}. */
export interface ExtAuthzServerOptions {
  readonly listen: ListenAddress;
  readonly check: CheckHandler;
  readonly logger: Logger;
}

/** The running ext_authz listener. */
export interface ExtAuthzServer {
  readonly port: number;
  /** Refuses new calls, lets calls in flight finish for up to `timeoutMs`, then cancels them. */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Serves `envoy.service.auth.v3.Authorization/Check` over gRPC (cleartext
 * HTTP/2, grpc-js: the fast gRPC server on Node) with protobuf-es messages
 * from the vendored Envoy protos, and `grpc.health.v1.Health/Check` beside it
 * (`ext-authz-health.ts`).
 *
 * @example
 * ```ts
 * const server = await startExtAuthzServer({ listen: { host: "0.0.0.0", port: 8083 }, check, logger });
 * await server.close(10_000);
 * ```
 */
export async function startExtAuthzServer(options: ExtAuthzServerOptions): Promise<ExtAuthzServer> {
  const { check, logger } = options;
  const server = new Server({
    "grpc.max_receive_message_length": MAX_CHECK_REQUEST_BYTES,
    // Pings keep Envoy's long-lived connection alive through NATs and find dead peers.
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.keepalive_permit_without_calls": 1,
  });
  const method = Authorization.method.check;
  const definition: ServiceDefinition = {
    check: {
      path: `/${Authorization.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (message: CheckRequest) => asBuffer(toBinary(CheckRequestSchema, message)),
      requestDeserialize: (bytes: Buffer) => fromBinary(CheckRequestSchema, bytes),
      // An answer may come serialized already (a cached key's usual OK: check-response.ts).
      responseSerialize: (message: CheckResponse | Uint8Array) =>
        asBuffer(message instanceof Uint8Array ? message : toBinary(CheckResponseSchema, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(CheckResponseSchema, bytes),
      originalName: "check",
    },
  };
  server.addService(definition, {
    check(
      call: ServerUnaryCall<CheckRequest, CheckResponse | Uint8Array>,
      callback: sendUnaryData<CheckResponse | Uint8Array>,
    ) {
      check(call.request, callerAddress(call.getPeer()), (response) => callback(null, response), {
        // Made only when a lookup has to wait for the token-service: the cached path needs none.
        get signal() {
          const controller = new AbortController();
          if (call.cancelled) controller.abort();
          else call.once("cancelled", () => controller.abort());
          return controller.signal;
        },
      });
    },
  });
  const health = extAuthzHealth();
  server.addService(health.definition, health.implementation);
  const host = options.listen.host.includes(":") ? `[${options.listen.host}]` : options.listen.host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${options.listen.port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  let closing: Promise<void> | undefined;
  return {
    port,
    close(timeoutMs) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          logger.warn({ port }, "ext_authz shutdown timeout: cancelling calls in flight");
          server.forceShutdown();
          resolve();
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closing;
    },
  };
}

/** The address of a grpc-js peer string (`127.0.0.1:5000`, `::1:5000`); "" when it is not one. */
export function callerAddress(peer: string): string {
  const colon = peer.lastIndexOf(":");
  const address = colon === -1 ? peer : peer.slice(0, colon);
  return isIP(address) === 0 ? "" : address;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
