// A client of the sidecar's Envoy ext_authz listener, built from Envoy's protos (the vendored
// envoy.service.auth.v3 in @latchkey/proto/envoy, over Connect's gRPC transport), and CheckRequests
// shaped the way Envoy's ext_authz filter fills them (check_request_utils.cc): lower-cased header
// names with the pseudo-headers among them, repeated headers merged with "," — or, under
// `encode_raw_headers`, every value on its own in `header_map` with only `raw_value` set.
import { create } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Authorization,
  type CheckRequest,
  CheckRequestSchema,
  type CheckResponse,
  type HeaderValueOption,
  HeaderValueOption_HeaderAppendAction,
} from "@latchkey/proto/envoy";

/** A request as a client sent it to Envoy. */
export interface EnvoyRequest {
  readonly method?: string;
  /** The request target after Envoy's normalization: path and query. */
  readonly path: string;
  /** The request's host (`:authority`, and Envoy's `http.host`); `app.test` when left out. */
  readonly authority?: string;
  /** Headers in the order sent; a name may repeat. */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  /** `encode_raw_headers: true`: header_map, each value on its own; else the merged map. */
  readonly rawHeaders?: boolean;
  /** Keep header-name case in the merged map (Envoy lower-cases; a hostile caller need not). */
  readonly keepCase?: boolean;
  /** The downstream client's address Envoy reports. */
  readonly source?: string;
}

/** A Check client for the ext_authz listener on `port`. */
export function extAuthzClient(port: number): Client<typeof Authorization> {
  return createClient(Authorization, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
}

/** The CheckRequest Envoy's HTTP ext_authz filter sends for `request`. */
export function envoyCheckRequest(request: EnvoyRequest): CheckRequest {
  const method = request.method ?? "GET";
  const authority = request.authority ?? "app.test";
  const all: Array<readonly [string, string]> = [
    [":authority", authority],
    [":path", request.path],
    [":method", method],
    [":scheme", "http"],
    ...(request.headers ?? []),
    ["x-forwarded-proto", "http"],
  ];
  const http = {
    id: "1234567890",
    method,
    path: request.path,
    host: authority,
    scheme: "http",
    protocol: "HTTP/1.1",
    size: -1n,
  };
  let headers: Record<string, string> | undefined;
  let headerMap: { headers: { key: string; rawValue: Uint8Array }[] } | undefined;
  if (request.rawHeaders === true) {
    headerMap = {
      headers: all.map(([key, value]) => ({
        key: key.toLowerCase(),
        rawValue: Buffer.from(value, "latin1"),
      })),
    };
  } else {
    headers = {};
    for (const [name, value] of all) {
      const key = request.keepCase === true ? name : name.toLowerCase();
      headers[key] = headers[key] === undefined ? value : `${headers[key]},${value}`;
    }
  }
  return create(CheckRequestSchema, {
    attributes: {
      source: {
        address: {
          address: {
            case: "socketAddress",
            value: {
              address: request.source ?? "203.0.113.7",
              portSpecifier: { case: "portValue", value: 40000 },
            },
          },
        },
      },
      destination: {
        address: {
          address: {
            case: "socketAddress",
            value: { address: "10.0.0.2", portSpecifier: { case: "portValue", value: 8000 } },
          },
        },
      },
      request: { http: { ...http, ...(headers ? { headers } : {}), ...(headerMap ? { headerMap } : {}) } },
    },
  });
}

/** A CheckResponse summed up the way Envoy acts on it. */
export interface CheckOutcome {
  readonly allowed: boolean;
  /** google.rpc.Status code. */
  readonly rpcCode: number;
  /** The HTTP status Envoy sends on a denial; 200 when allowed. */
  readonly status: number;
  /** OK: headers set on the upstream request (lower-cased names); denied: headers of the local reply. */
  readonly headers: Readonly<Record<string, string>>;
  /** Whether every header option overwrites (never appends to a client's header). */
  readonly overwrites: boolean;
  readonly headersToRemove: readonly string[];
  readonly queryParametersToRemove: readonly string[];
  readonly responseHeadersToAdd: Readonly<Record<string, string>>;
  /** The denial's body, parsed. */
  readonly body: { error: { code: string; message: string; requestId: string } } | undefined;
}

/** Sums up a CheckResponse. */
export function outcomeOf(response: CheckResponse): CheckOutcome {
  const flatten = (options: readonly HeaderValueOption[]) =>
    Object.fromEntries(
      options.map((option) => [option.header?.key.toLowerCase() ?? "", option.header?.value ?? ""]),
    );
  const overwrites = (options: readonly HeaderValueOption[]) =>
    options.every(
      (option) =>
        option.appendAction === HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD &&
        option.append === undefined,
    );
  const rpcCode = response.status?.code ?? 0;
  const { httpResponse } = response;
  if (httpResponse.case === "okResponse") {
    const ok = httpResponse.value;
    return {
      allowed: rpcCode === 0,
      rpcCode,
      status: 200,
      headers: flatten(ok.headers),
      overwrites: overwrites(ok.headers) && overwrites(ok.responseHeadersToAdd),
      headersToRemove: ok.headersToRemove,
      queryParametersToRemove: ok.queryParametersToRemove,
      responseHeadersToAdd: flatten(ok.responseHeadersToAdd),
      body: undefined,
    };
  }
  const denied = httpResponse.case === "deniedResponse" ? httpResponse.value : undefined;
  return {
    allowed: false,
    rpcCode,
    status: denied?.status?.code ?? 403,
    headers: flatten(denied?.headers ?? []),
    overwrites: overwrites(denied?.headers ?? []),
    headersToRemove: [],
    queryParametersToRemove: [],
    responseHeadersToAdd: {},
    body: denied?.body ? JSON.parse(denied.body) : undefined,
  };
}
