import type { CheckRequest } from "@latchkey/proto/envoy";
import { scanRequestHeaders } from "../proxy/forward-headers.js";
import { splitTarget } from "../proxy/proxy-context.js";
import type { IncomingRequest } from "../proxy/request-decision.js";
import type { Refusal } from "../refusal.js";
import { nextRequestId } from "../request-id.js";
import { BAD_CHECK_METHOD, MISSING_HTTP_ATTRIBUTES } from "./ext-authz-refusals.js";

/** A CheckRequest read into the request the sidecar decides. */
export interface ReadCheck {
  readonly request: IncomingRequest;
  /** The request's headers, flat `[name, value, …]`, pseudo-headers left out: what Envoy may remove. */
  readonly rawHeaders: readonly string[];
  /** Why it cannot be decided at all (no HTTP attributes, no method); undefined when it can. */
  readonly refusal: Refusal | undefined;
}

const HTTP_METHOD = /^[A-Z]{1,20}$/;

/**
 * Reads an Envoy CheckRequest as the sidecar's other entry points read an
 * HTTP request: method, the path as Envoy will forward it (already normalized
 * by its HTTP connection manager) and query, and the headers through the same
 * scan as proxy mode. Headers come from `header_map` when Envoy sends it
 * (`encode_raw_headers: true`: every value on its own, so two credentials are
 * seen as two) and from the merged `headers` map otherwise. The client's
 * address is the one Envoy reports (`attributes.source`), used for per-client
 * rate limits; `caller` (Envoy itself) when it reports none.
 *
 * @example
 * ```ts
 * const { request, refusal } = readCheckRequest(check, "127.0.0.1", performance.now());
 * ```
 */
export function readCheckRequest(
  check: CheckRequest,
  caller: string,
  start: number,
  abortable?: { readonly signal: AbortSignal },
): ReadCheck {
  const attributes = check.attributes;
  const http = attributes?.request?.http;
  const rawHeaders: string[] = [];
  const map = http?.headerMap?.headers;
  if (map !== undefined && map.length > 0) {
    for (const header of map) {
      // Envoy fills raw_value (bytes) under encode_raw_headers; latin1 keeps every byte as one character.
      const raw = header.rawValue;
      const value =
        raw.length > 0
          ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("latin1")
          : header.value;
      pushHeader(rawHeaders, header.key, value);
    }
  } else if (http !== undefined) {
    for (const name in http.headers) pushHeader(rawHeaders, name, http.headers[name] as string);
  }
  const scanned = scanRequestHeaders(rawHeaders);
  const [rawPath, query] = splitTarget(http?.path ?? "");
  const source = attributes?.source?.address?.address;
  const client =
    source?.case === "socketAddress" && source.value.address !== "" ? source.value.address : caller;
  const method = (http?.method ?? "").toUpperCase();
  const request: IncomingRequest = {
    via: "ext-authz",
    method,
    rawPath,
    query,
    scanned,
    requestId: scanned.requestId ?? nextRequestId(),
    peer: client,
    start,
    abortable,
    span: undefined,
  };
  const refusal =
    http === undefined || http.method === "" || http.path === ""
      ? MISSING_HTTP_ATTRIBUTES
      : !HTTP_METHOD.test(method)
        ? BAD_CHECK_METHOD
        : undefined;
  return { request, rawHeaders, refusal };
}

/**
 * Adds a header. Of the pseudo-headers Envoy lists too (`:path`, `:method`, …)
 * only `:authority` is kept, as `Host`: Envoy carries every request's host
 * there (HTTP/1.1's `Host` included), and host rules decide on it.
 */
function pushHeader(raw: string[], name: string, value: string): void {
  if (name.charCodeAt(0) === 0x3a) {
    if (name === ":authority") raw.push("host", value);
    return;
  }
  raw.push(name, value);
}
