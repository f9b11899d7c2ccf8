import { percentEncodeChar } from "../percent-encode.js";

/**
 * Why a request path was refused. Each is a shape that two HTTP stacks read two
 * ways, so the sidecar refuses it (400) rather than guess which way the app reads it.
 */
export type PathRejection =
  | "not_origin_form"
  | "encoded_separator"
  | "nul"
  | "invalid_percent_encoding"
  | "invalid_utf8"
  | "control_character"
  | "double_encoding"
  | "backslash"
  | "non_ascii"
  | "encoded_delimiter"
  | "parameter_only_segment"
  | "not_canonical";

/** Outcome of {@link normalizePath}. */
export type NormalizedPath =
  | {
      readonly ok: true;
      /** The canonical path, percent-encoded: what goes upstream, so the app sees what was matched. */
      readonly path: string;
      /**
       * What the policy matches: decoded, dot segments and duplicate slashes resolved,
       * `;params` dropped from each segment, no trailing slash (except `/` itself).
       */
      readonly matchPath: string;
    }
  | { readonly ok: false; readonly reason: PathRejection };

// Characters that need no decoding and no re-encoding, minus `;` (path parameters) and `%`.
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,=:@/]*$/;
// A segment may carry these raw (RFC 3986 pchar); everything else is percent-encoded on the way out.
const PCHAR_RAW = /[A-Za-z0-9\-._~!$&'()*+,;=:@]/;
const HEX_PAIR = /%[0-9A-Fa-f]{2}/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Normalizes the path of an origin-form request target (no query) once, the way
 * the policy sees it and the upstream receives it:
 * percent-decoding once, then dot segments and duplicate slashes resolved. It
 * refuses rather than guesses: encoded `/` or `\` (`%2F`, `%5C`), a raw `\`,
 * NUL, control characters, invalid percent-encoding or UTF-8, raw non-ASCII,
 * and anything still percent-encoded after one decoding (`%252e`).
 *
 * Path parameters (`;jsessionid=…`) are dropped for matching, and a segment
 * that is `.` or `..` once they are dropped counts as a dot segment, so
 * `/public/..;/admin` matches as `/admin` (Java servers read it that way).
 *
 * @example
 * ```ts
 * normalizePath("/public/%2e%2e//admin/"); // { ok: true, path: "/admin/", matchPath: "/admin" }
 * normalizePath("/a%2Fb"); // { ok: false, reason: "encoded_separator" }
 * ```
 */
export function normalizePath(raw: string): NormalizedPath {
  if (raw.charCodeAt(0) !== 0x2f) return { ok: false, reason: "not_origin_form" };
  // The common case: nothing to decode, no dot segments, no empty segments, no parameters.
  if (PLAIN_PATH.test(raw) && !raw.includes("//") && !raw.includes("/.")) {
    const matchPath = raw.length > 1 && raw.endsWith("/") ? raw.slice(0, -1) : raw;
    return { ok: true, path: raw, matchPath };
  }
  const rawSegments = raw.slice(1).split("/");
  const segments: string[] = [];
  const matchSegments: string[] = [];
  for (const rawSegment of rawSegments) {
    const decoded = decodeSegment(rawSegment);
    if (typeof decoded !== "string") return decoded;
    if (decoded === "") continue;
    const semicolon = decoded.indexOf(";");
    const bare = semicolon === -1 ? decoded : decoded.slice(0, semicolon);
    // `/;x/admin`: Tomcat-style stacks drop the parameter and merge the empty segment away, so the
    // app reads `/admin` while a matcher that keeps the segment does not.
    if (bare === "" && semicolon !== -1) return { ok: false, reason: "parameter_only_segment" };
    if (bare === ".") continue;
    if (bare === "..") {
      // Like URL resolution, `..` at the root stays at the root.
      segments.pop();
      matchSegments.pop();
      continue;
    }
    segments.push(decoded);
    matchSegments.push(bare);
  }
  const last = rawSegments[rawSegments.length - 1];
  const trailingSlash = segments.length > 0 && last === "";
  const path = `/${segments.map(encodeSegment).join("/")}${trailingSlash ? "/" : ""}`;
  return { ok: true, path, matchPath: `/${matchSegments.join("/")}` };
}

function decodeSegment(segment: string): string | { ok: false; reason: PathRejection } {
  let needsDecoding = false;
  for (let i = 0; i < segment.length; i++) {
    const code = segment.charCodeAt(i);
    if (code === 0x5c) return { ok: false, reason: "backslash" };
    if (code < 0x21 || code === 0x7f) return { ok: false, reason: "control_character" };
    if (code > 0x7e) return { ok: false, reason: "non_ascii" };
    if (code === 0x25) needsDecoding = true;
  }
  if (!needsDecoding) return segment;
  const bytes: number[] = [];
  for (let i = 0; i < segment.length; i++) {
    const code = segment.charCodeAt(i);
    if (code !== 0x25) {
      bytes.push(code);
      continue;
    }
    const hex = segment.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { ok: false, reason: "invalid_percent_encoding" };
    const byte = Number.parseInt(hex, 16);
    if (byte === 0x2f || byte === 0x5c) return { ok: false, reason: "encoded_separator" };
    // `%3B` would leave as a raw `;`: encoded data turned into a path-parameter delimiter.
    if (byte === 0x3b) return { ok: false, reason: "encoded_delimiter" };
    if (byte === 0) return { ok: false, reason: "nul" };
    bytes.push(byte);
    i += 2;
  }
  let decoded: string;
  try {
    decoded = utf8.decode(Uint8Array.from(bytes));
  } catch {
    return { ok: false, reason: "invalid_utf8" };
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects.
  if (/[\u0000-\u001f\u007f]/.test(decoded)) return { ok: false, reason: "control_character" };
  // Still encoded after one decoding: an app that decodes twice would see another path.
  if (HEX_PAIR.test(decoded)) return { ok: false, reason: "double_encoding" };
  return decoded;
}

function encodeSegment(segment: string): string {
  let out = "";
  for (const char of segment) {
    out += PCHAR_RAW.test(char) ? char : percentEncodeChar(char);
  }
  return out;
}

/**
 * Whether a raw path is already the canonical form {@link normalizePath} gave
 * for it, so an app that reads the raw path (because a proxy in front forwards
 * it as sent) reads what the policy matched: no dot or empty segments, no
 * `;` parameters, nothing percent-encoded that needs no encoding. Hex digits
 * of escapes may be either case.
 *
 * @example
 * ```ts
 * isCanonicalPath("/admin/../x", "/x"); // false
 * isCanonicalPath("/caf%c3%a9", "/caf%C3%A9"); // true
 * ```
 */
export function isCanonicalPath(raw: string, canonical: string): boolean {
  if (raw.includes(";")) return false;
  if (raw === canonical) return true;
  return raw.includes("%") && raw.replace(/%[0-9a-f]{2}/gi, (pair) => pair.toUpperCase()) === canonical;
}
