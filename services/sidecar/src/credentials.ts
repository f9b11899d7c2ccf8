/** Where a credential came from. */
export type CredentialSource = "authorization" | "x-api-key" | "query";

/** Why a presented credential was refused before any lookup. */
export type CredentialRejection = "empty" | "too_long" | "bad_characters";

/** The credentials a request carries, as found in it; values not yet checked. */
export interface PresentedCredentials {
  /** Values of `Authorization: Bearer …` headers, scheme removed. */
  readonly bearer: readonly string[];
  /** Values of `X-API-Key` headers. */
  readonly apiKey: readonly string[];
  /** Raw (still percent-encoded) values of `token` query parameters, when the route allows them. */
  readonly query: readonly string[];
}

/** Outcome of {@link extractCredential}. */
export type CredentialOutcome =
  | { readonly kind: "none" }
  | { readonly kind: "ok"; readonly value: string; readonly source: CredentialSource }
  /** Two different credentials in one request: refused rather than picking one. */
  | { readonly kind: "conflict" }
  | { readonly kind: "invalid"; readonly reason: CredentialRejection };

// Visible ASCII only: a header value arrives as latin1, so non-UTF-8 or non-ASCII bytes show up here.
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;
const BEARER = /^bearer(?: +|$)/i;

/**
 * Picks the one credential a request carries from `Authorization: Bearer`,
 * `X-API-Key` and (where the route allows it) `?token=`. The same value in two
 * places counts once; two different values are a conflict. A value longer than
 * `maxBytes`, or with anything but visible ASCII, is refused here, so it never
 * reaches the verifier, a cache key or a log.
 *
 * @example
 * ```ts
 * extractCredential({ bearer: ["lk_live_…"], apiKey: [], query: [] }, 512); // { kind: "ok", source: "authorization", … }
 * ```
 */
export function extractCredential(presented: PresentedCredentials, maxBytes: number): CredentialOutcome {
  let value: string | undefined;
  let source: CredentialSource = "authorization";
  for (const candidate of presented.bearer) {
    if (value === undefined) value = candidate;
    else if (value !== candidate) return CONFLICT;
  }
  for (const candidate of presented.apiKey) {
    if (value === undefined) {
      value = candidate;
      source = "x-api-key";
    } else if (value !== candidate) return CONFLICT;
  }
  for (const raw of presented.query) {
    // Bounded before decoding: an encoded value is at most three times its decoded length.
    if (raw.length > maxBytes * 3) return { kind: "invalid", reason: "too_long" };
    // A percent-encoding that does not decode (or decodes to non-UTF-8) is not a token.
    const decoded = decodeQueryValue(raw);
    if (decoded === undefined) return { kind: "invalid", reason: "bad_characters" };
    if (value === undefined) {
      value = decoded;
      source = "query";
    } else if (value !== decoded) return CONFLICT;
  }
  if (value === undefined) return NONE;
  if (value.length === 0) return { kind: "invalid", reason: "empty" };
  if (value.length > maxBytes) return { kind: "invalid", reason: "too_long" };
  if (!VISIBLE_ASCII.test(value)) return { kind: "invalid", reason: "bad_characters" };
  return { kind: "ok", value, source };
}

const NONE: CredentialOutcome = { kind: "none" };
const CONFLICT: CredentialOutcome = { kind: "conflict" };

/**
 * The token of an `Authorization` value with the Bearer scheme (any case),
 * or undefined for other schemes (Basic, …), which belong to the app.
 *
 * @example
 * ```ts
 * bearerToken("bearer abc"); // "abc"
 * bearerToken("Basic dXNlcg=="); // undefined
 * ```
 */
export function bearerToken(authorization: string): string | undefined {
  const match = BEARER.exec(authorization);
  return match === null ? undefined : authorization.slice(match[0].length).trimEnd();
}

/** A query string split into its `token` values and everything else, untouched. */
export interface SplitQuery {
  /** Raw values of every `token` parameter. */
  readonly tokens: readonly string[];
  /** The query without them (no leading `?`), or "" when nothing is left. */
  readonly rest: string;
}

/**
 * Takes every `token` parameter out of a query string (without the `?`),
 * leaving the other parameters byte for byte. Parameter names are compared
 * decoded, so `%74oken=` is a token too and cannot slip past to the app.
 *
 * @example
 * ```ts
 * splitQueryToken("a=1&token=lk_live_x&b=2"); // { tokens: ["lk_live_x"], rest: "a=1&b=2" }
 * ```
 */
export function splitQueryToken(query: string): SplitQuery {
  if (!query.includes("oken") && !query.includes("%")) return { tokens: [], rest: query };
  const tokens: string[] = [];
  const kept: string[] = [];
  for (const part of query.split("&")) {
    const equals = part.indexOf("=");
    const name = equals === -1 ? part : part.slice(0, equals);
    if (decodeQueryName(name) === "token") tokens.push(equals === -1 ? "" : part.slice(equals + 1));
    else kept.push(part);
  }
  return { tokens, rest: tokens.length === 0 ? query : kept.join("&") };
}

/**
 * The `token` parameter names of a query string as they are spelled in it
 * (`token`, `%74oken`, …), each once: what a proxy that compares names
 * without decoding them (Envoy's `query_parameters_to_remove`) must be told
 * to remove so that {@link splitQueryToken}'s tokens are all gone.
 *
 * @example
 * ```ts
 * queryTokenNames("a=1&%74oken=x&token=y"); // ["%74oken", "token"]
 * ```
 */
export function queryTokenNames(query: string): string[] {
  const names: string[] = [];
  for (const part of query.split("&")) {
    const equals = part.indexOf("=");
    const name = equals === -1 ? part : part.slice(0, equals);
    if (decodeQueryName(name) === "token" && !names.includes(name)) names.push(name);
  }
  return names;
}

function decodeQueryName(name: string): string {
  if (!name.includes("%") && !name.includes("+")) return name;
  try {
    return decodeURIComponent(name.replaceAll("+", " "));
  } catch {
    return name;
  }
}

function decodeQueryValue(raw: string): string | undefined {
  if (!raw.includes("%") && !raw.includes("+")) return raw;
  try {
    return decodeURIComponent(raw.replaceAll("+", " "));
  } catch {
    return undefined;
  }
}
