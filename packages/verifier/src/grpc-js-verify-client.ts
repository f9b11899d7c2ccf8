import { isIP } from "node:net";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type ChannelCredentials,
  type ChannelOptions,
  Client,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  type VerifyRequest,
  VerifyRequestSchema,
  type VerifyResponse,
  VerifyResponseSchema,
} from "@latchkey/proto";
import type { VerifyClient } from "./verify-client.js";

/**
 * The Verify method's path on the wire.
 *
 * @example
 * ```ts
 * client.makeUnaryRequest(VERIFY_METHOD_PATH, serialize, deserialize, request, callback);
 * ```
 */
export const VERIFY_METHOD_PATH = "/latchkey.v1.TokenService/Verify";

/**
 * Options of {@link createGrpcJsVerifyClient}.
 *
 * @example
 * ```ts
 * const options: GrpcJsVerifyClientOptions = { address: "https://token-service:8082", tls: { rootCerts } };
 * ```
 */
export interface GrpcJsVerifyClientOptions {
  /**
   * The token-service's native gRPC listener: `host:port`, or a URL
   * (`http://host:8082` for plaintext, `https://host:8082` for TLS).
   */
  readonly address: string;
  /** TLS with the system roots (`true`) or the given PEM material. Implied by an `https://` address. */
  readonly tls?: boolean | { rootCerts?: Buffer; privateKey?: Buffer; certChain?: Buffer };
  /** Explicit channel credentials; override `tls`. */
  readonly credentials?: ChannelCredentials;
  /** grpc-js channel options (keepalive, max message size, …). */
  readonly channelOptions?: ChannelOptions;
}

function serialize(request: VerifyRequest): Buffer {
  const bytes = toBinary(VerifyRequestSchema, request);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function deserialize(bytes: Buffer): VerifyResponse {
  return fromBinary(VerifyResponseSchema, bytes);
}

/**
 * Splits `http(s)://host:port` into a grpc-js target and whether it implies TLS.
 *
 * @example
 * ```ts
 * parseGrpcAddress("https://token-service:8082"); // { target: "token-service:8082", tls: true }
 * ```
 */
export function parseGrpcAddress(address: string): { target: string; tls: boolean } {
  const match = /^(https?):\/\/([^/]+)\/?$/.exec(address);
  if (match === null) return { target: address, tls: false };
  return { target: match[2] ?? "", tls: match[1] === "https" };
}

function credentialsFor(
  options: GrpcJsVerifyClientOptions,
  impliedTls: boolean,
  ipHost: string | undefined,
): ChannelCredentials {
  if (options.credentials !== undefined) return options.credentials;
  const tls = options.tls ?? impliedTls;
  if (tls === false) return grpcCredentials.createInsecure();
  // The certificate is checked against the address dialled, IP SANs included (see ipTargetOptions).
  const verify =
    ipHost === undefined
      ? undefined
      : { checkServerIdentity: (_name: string, cert: PeerCertificate) => checkServerIdentity(ipHost, cert) };
  if (tls === true) return grpcCredentials.createSsl(null, null, null, verify);
  return grpcCredentials.createSsl(
    tls.rootCerts ?? null,
    tls.privateKey ?? null,
    tls.certChain ?? null,
    verify,
  );
}

// grpc-js sends the target's host as the TLS server name (SNI), and Node 26 refuses an IP address
// there (SNI carries host names only, RFC 6066 §3). For an IP target the name sent is this
// reserved one (RFC 2606), and the certificate is still checked against the IP itself.
const IP_TARGET_SERVER_NAME = "latchkey-token-service.invalid";

/** The host of a `host:port` or `[v6]:port` target when it is an IP literal. */
function ipHostOf(target: string): string | undefined {
  const host = target.startsWith("[") ? target.slice(1, target.indexOf("]")) : target.replace(/:\d+$/, "");
  return isIP(host) === 0 ? undefined : host;
}

/**
 * A {@link VerifyClient} on @grpc/grpc-js, talking to the token-service's
 * native gRPC listener (`LATCHKEY_GRPC_LISTEN`, port 8082): the fast path, with
 * protobuf-es doing the (de)serialization and no generated grpc-js stubs.
 * Errors become `ConnectError`s carrying the gRPC status code, like the
 * Connect client's.
 *
 * @example
 * ```ts
 * const client = createGrpcJsVerifyClient({ address: "http://token-service:8082" });
 * const response = await client.verify(create(VerifyRequestSchema, { token }), { timeoutMs: 2000 });
 * ```
 */
export function createGrpcJsVerifyClient(options: GrpcJsVerifyClientOptions): VerifyClient {
  const { target, tls } = parseGrpcAddress(options.address);
  const secure = options.credentials === undefined && (options.tls ?? tls) !== false;
  const ipHost = secure ? ipHostOf(target) : undefined;
  const channelOptions =
    ipHost === undefined
      ? options.channelOptions
      : { "grpc.ssl_target_name_override": IP_TARGET_SERVER_NAME, ...options.channelOptions };
  const client = new Client(target, credentialsFor(options, tls, ipHost), channelOptions);
  return {
    verify(request, callOptions) {
      return new Promise<VerifyResponse>((resolve, reject) => {
        const signal = callOptions.signal;
        if (signal?.aborted) {
          reject(new ConnectError("the operation was aborted", Code.Canceled));
          return;
        }
        const onAbort = () => call.cancel();
        const call = client.makeUnaryRequest(
          VERIFY_METHOD_PATH,
          serialize,
          deserialize,
          request,
          metadataOf(callOptions.headers),
          { deadline: Date.now() + callOptions.timeoutMs },
          (error: ServiceError | null, response?: VerifyResponse) => {
            signal?.removeEventListener("abort", onAbort);
            if (error !== null) {
              reject(
                new ConnectError(
                  error.details || error.message,
                  error.code as number as Code,
                  undefined,
                  undefined,
                  error,
                ),
              );
            } else if (response === undefined) {
              reject(new ConnectError("empty response", Code.Internal));
            } else {
              resolve(response);
            }
          },
        );
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },
    close() {
      client.close();
    },
  };
}

/** gRPC metadata holding `headers` (none: an empty one, as before). */
function metadataOf(headers: Readonly<Record<string, string>> | undefined): Metadata {
  const metadata = new Metadata();
  if (headers !== undefined)
    for (const name of Object.keys(headers)) metadata.set(name, headers[name] as string);
  return metadata;
}
