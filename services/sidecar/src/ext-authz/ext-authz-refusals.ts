import type { Refusal } from "../refusal.js";

/**
 * The Envoy settings a path must have passed through before Latchkey decides
 * on it: what the app receives is Envoy's `:path`, so it must be the one form
 * the policy matches. Named in refusals and in the logs.
 */
export const ENVOY_PATH_SETTINGS =
  "normalize_path: true, merge_slashes: true, path_with_escaped_slashes_action: REJECT_REQUEST (or UNESCAPE_AND_REDIRECT)";

/**
 * 400: Envoy asked about a path its normalization should have changed (dot or
 * empty segments, `%2F`/`%5C`, needless percent-encoding, `;` parameters): its
 * HTTP connection manager is missing a setting, and the app would read the
 * path differently from the policy.
 */
export const PATH_NOT_NORMALIZED: Refusal = {
  status: 400,
  code: "invalid_request",
  message: `The request path is not in normalized form. The proxy in front must normalize paths before it asks Latchkey (Envoy: ${ENVOY_PATH_SETTINGS}).`,
  headers: [],
};

/** 403: a Check call from a peer outside `LATCHKEY_TRUSTED_PROXIES`, which may not describe requests. */
export const UNTRUSTED_CHECK: Refusal = {
  status: 403,
  code: "forbidden",
  message: "Check requests are accepted only from trusted proxies (LATCHKEY_TRUSTED_PROXIES).",
  headers: [],
};

/** 400: a CheckRequest without the HTTP request attributes (a network-level ext_authz filter, or not Envoy). */
export const MISSING_HTTP_ATTRIBUTES: Refusal = {
  status: 400,
  code: "invalid_request",
  message: "The CheckRequest carries no HTTP request (attributes.request.http with a method and a path).",
  headers: [],
};

/** 400: a CheckRequest whose method is not an HTTP method. */
export const BAD_CHECK_METHOD: Refusal = {
  status: 400,
  code: "invalid_request",
  message: "The CheckRequest's attributes.request.http.method is not an HTTP method.",
  headers: [],
};
