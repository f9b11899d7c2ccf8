import { create, toBinary } from "@bufbuild/protobuf";
import {
  type CheckResponse,
  CheckResponseSchema,
  type HeaderValueOption,
  HeaderValueOption_HeaderAppendAction,
  HeaderValueOptionSchema,
} from "@latchkey/proto/envoy";
import { queryTokenNames } from "../credentials.js";
import type { Decision } from "../decision.js";
import type { VerifiedKey } from "../key-checker.js";
import { isSensitiveVariant } from "../proxy/forward-headers.js";
import { identityHeaders } from "../proxy/identity-headers.js";
import { type Refusal, refusalBody, refusalHeaders } from "../refusal.js";
import type { ReadCheck } from "./check-request.js";

// Headers proxy mode never forwards: rewrite headers an app may route on, and the forward-auth
// description of a request, which only a proxy may set.
const ALWAYS_REMOVED = new Set([
  "x-original-url",
  "x-rewrite-url",
  "x-original-uri",
  "x-forwarded-uri",
  "x-original-method",
  "x-forwarded-method",
]);
const METHOD_OVERRIDES = new Set(["x-http-method-override", "x-http-method", "x-method-override"]);
// A Bearer credential anywhere in an Authorization value (Envoy merges repeated headers with ",").
const BEARER_ANYWHERE = /(?:^|,)\s*bearer(?:\s|,|$)/i;

/**
 * The OK answer: Envoy forwards the request with the key's identity headers
 * (replacing any of those names), without the headers proxy mode would strip
 * (the credential unless the rule passes it, method overrides unless it
 * allows them, `x-latchkey-*` in any spelling, rewrite headers), without
 * `token` query parameters the decision took out, and answers the client with
 * the rate-limit headers. Envoy removes after it sets, so a name that is set
 * is never also listed for removal.
 *
 * The common answers (a key, or none, and the headers to remove; no query
 * parameter, no rate-limit header) are serialized once and their bytes reused:
 * per cached key, and for at most {@link ANSWERS_PER_KEY} sets of removed
 * headers each, so a client varying its headers cannot grow the cache.
 */
export function allowedResponse(decision: Decision, read: ReadCheck): CheckResponse | Uint8Array {
  const key = decision.allow ? decision.key : undefined;
  const identity = key === undefined ? undefined : identityHeaders(key);
  const remove = headersToRemove(read.rawHeaders, decision, identity);
  const queryRemove = decision.query === read.request.query ? NONE : queryTokenNames(read.request.query);
  const build = () =>
    create(CheckResponseSchema, {
      status: { code: 0 },
      httpResponse: {
        case: "okResponse",
        value: {
          headers: key === undefined ? [] : identityOptions(key),
          headersToRemove: remove,
          queryParametersToRemove: queryRemove,
          responseHeadersToAdd:
            decision.rateLimitHeaders === undefined ? [] : headerOptions(decision.rateLimitHeaders),
        },
      },
    });
  if (queryRemove.length > 0 || decision.rateLimitHeaders !== undefined) return build();
  let answers = key === undefined ? anonymousAnswers : serialized.get(key);
  if (answers === undefined) {
    answers = new Map();
    serialized.set(key as VerifiedKey, answers);
  }
  // JSON, not a joined string: a caller's header name may hold any separator.
  const signature = JSON.stringify(remove);
  let bytes = answers.get(signature);
  if (bytes === undefined) {
    bytes = toBinary(CheckResponseSchema, build());
    if (answers.size < ANSWERS_PER_KEY) answers.set(signature, bytes);
  }
  return bytes;
}

/** Serialized OK answers kept per key (one per set of removed headers). */
export const ANSWERS_PER_KEY = 16;
const serialized = new WeakMap<VerifiedKey, Map<string, Uint8Array>>();
const anonymousAnswers = new Map<string, Uint8Array>();
const NONE: string[] = [];

/**
 * A denial: the refusal proxy mode would send (status, `WWW-Authenticate`,
 * `Retry-After`, rate-limit headers, the JSON body with the request id) for
 * Envoy to send to the client, and a gRPC status that says the same for
 * callers that only look at it (the network-level ext_authz filter).
 */
export function deniedResponse(refusal: Refusal, requestId: string): CheckResponse {
  const body = refusalBody(refusal, requestId);
  const flat = refusalHeaders(refusal, requestId, body);
  const headers: HeaderValueOption[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    // Envoy sets the length of the body it sends itself.
    if (flat[i] !== "content-length") headers.push(headerOption(flat[i] as string, flat[i + 1] as string));
  }
  return create(CheckResponseSchema, {
    status: { code: rpcCode(refusal.status), message: refusal.code },
    httpResponse: {
      case: "deniedResponse",
      value: { status: { code: refusal.status }, headers, body },
    },
  });
}

/**
 * The names (lower-cased, each once) to remove from the request before Envoy
 * forwards it, skipping those in `identity` (flat), which are set instead.
 */
export function headersToRemove(
  raw: readonly string[],
  decision: Decision,
  identity: readonly string[] | undefined,
): string[] {
  const remove: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = (raw[i] as string).toLowerCase();
    if (remove.includes(lower) || (identity !== undefined && setsName(identity, lower))) continue;
    if (removes(lower, raw[i + 1] as string, decision)) remove.push(lower);
  }
  return remove;
}

function removes(lower: string, value: string, decision: Decision): boolean {
  if (lower === "authorization") return !decision.passCredential && BEARER_ANYWHERE.test(value);
  if (lower === "x-api-key") return !decision.passCredential;
  if (METHOD_OVERRIDES.has(lower)) return !decision.passMethodOverride;
  return ALWAYS_REMOVED.has(lower) || isSensitiveVariant(lower);
}

function setsName(flat: readonly string[], lower: string): boolean {
  for (let i = 0; i < flat.length; i += 2) if (flat[i] === lower) return true;
  return false;
}

const identityCache = new WeakMap<VerifiedKey, HeaderValueOption[]>();

/** The identity headers as Envoy header options, overwriting a header of the same name; made once per key. */
function identityOptions(key: VerifiedKey): HeaderValueOption[] {
  let options = identityCache.get(key);
  if (options === undefined) {
    options = headerOptions(identityHeaders(key));
    identityCache.set(key, options);
  }
  return options;
}

function headerOptions(flat: readonly string[]): HeaderValueOption[] {
  const options: HeaderValueOption[] = [];
  for (let i = 0; i < flat.length; i += 2)
    options.push(headerOption(flat[i] as string, flat[i + 1] as string));
  return options;
}

function headerOption(key: string, value: string): HeaderValueOption {
  return create(HeaderValueOptionSchema, {
    header: { key, value },
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
  });
}

/** The gRPC status code that says what an HTTP refusal says (google.rpc.Code). */
function rpcCode(status: number): number {
  switch (status) {
    case 400:
      return 3; // INVALID_ARGUMENT
    case 401:
      return 16; // UNAUTHENTICATED
    case 429:
      return 8; // RESOURCE_EXHAUSTED
    case 502:
    case 503:
      return 14; // UNAVAILABLE
    default:
      return 7; // PERMISSION_DENIED
  }
}
