// How Traefik v3 reads a request path, reproduced for the Traefik-shaped forward-auth front
// (traefik-forward-auth.ts): Go's net/url (`setPath`, `EscapedPath`, `validEncoded`, `shouldEscape`
// for paths, `path.Clean`) and Traefik's entry-point handlers `normalizePath` (unreserved escapes
// decoded, the others upper-cased) and `sanitizePath` (`URL.JoinPath`: dot segments and repeated
// slashes removed), as read in traefik/traefik pkg/server/server_entrypoint_tcp.go and Go's
// src/net/url/url.go. Only what decides the URI the auth service and the app get.

/** Go's `url.URL` path fields. */
export interface GoPath {
  /** Decoded. */
  readonly path: string;
  /** The encoded form when it differs from Go's default encoding; "" otherwise. */
  readonly rawPath: string;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Go's `shouldEscape(c, encodePath)`. */
function shouldEscape(char: string): boolean {
  if (UNRESERVED.test(char)) return false;
  if ("$&+,/:;=@".includes(char)) return false;
  return true; // `?` and everything else
}

/** Go's `validEncoded(s, encodePath)`. */
function validEncoded(raw: string): boolean {
  for (const char of raw) {
    if ("!$&'()*+,;=:@[]%".includes(char)) continue;
    if (shouldEscape(char)) return false;
  }
  return true;
}

/** Go's `unescape(s, encodePath)`; undefined for a bad escape (Go's server answers 400). */
export function goUnescape(raw: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === "%") {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else bytes.push(...Buffer.from(raw[i] as string, "latin1"));
  }
  return Buffer.from(bytes).toString("latin1");
}

/** Go's `escape(s, encodePath)` over the bytes of `path` (latin1: one character per byte). */
function goEscape(path: string): string {
  let out = "";
  for (const char of path) {
    out += shouldEscape(char) ? `%${char.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}` : char;
  }
  return out;
}

/** Go's `URL.setPath(p)`; undefined when `p` has a bad escape. */
export function goSetPath(encoded: string): GoPath | undefined {
  const path = goUnescape(encoded);
  if (path === undefined) return undefined;
  return { path, rawPath: goEscape(path) === encoded ? "" : encoded };
}

/** Go's `URL.EscapedPath()`. */
export function goEscapedPath(url: GoPath): string {
  if (url.rawPath !== "" && validEncoded(url.rawPath) && goUnescape(url.rawPath) === url.path)
    return url.rawPath;
  return goEscape(url.path);
}

/** Go's `path.Clean`. */
export function goClean(path: string): string {
  const rooted = path.startsWith("/");
  const out: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(segment);
  }
  const joined = out.join("/");
  return rooted ? `/${joined}` : joined === "" ? "." : joined;
}

/** Traefik's entry-point `normalizePath` on the raw path; undefined when it answers 400. */
export function traefikNormalize(url: GoPath): GoPath | undefined {
  if (url.rawPath === "") return url;
  let normalized = "";
  for (let i = 0; i < url.rawPath.length; i++) {
    const char = url.rawPath[i] as string;
    if (char !== "%") {
      normalized += char;
      continue;
    }
    if (i + 2 >= url.rawPath.length) return undefined;
    const encoded = url.rawPath.slice(i, i + 3).toUpperCase();
    const decoded = String.fromCharCode(Number.parseInt(encoded.slice(1), 16));
    normalized += UNRESERVED.test(decoded) ? decoded : encoded;
    i += 2;
  }
  return { path: url.path, rawPath: normalized };
}

/** Traefik's entry-point `sanitizePath`: `URL.JoinPath()`, keeping a trailing slash. */
export function traefikSanitize(url: GoPath): GoPath | undefined {
  const escaped = goEscapedPath(url);
  let cleaned = goClean(escaped.startsWith("/") ? escaped : `/${escaped}`);
  if (escaped.endsWith("/") && !cleaned.endsWith("/")) cleaned += "/";
  return goSetPath(cleaned);
}

/**
 * The request URI Traefik passes on (to ForwardAuth as `X-Forwarded-Uri`, and to the app) for a
 * request target: normalized, sanitized, `EscapedPath()` plus the raw query. Undefined when
 * Traefik answers 400 (a bad escape, a fragment).
 */
export function traefikRequestUri(target: string): string | undefined {
  const question = target.indexOf("?");
  const rawPath = question === -1 ? target : target.slice(0, question);
  const query = question === -1 ? "" : target.slice(question + 1);
  const parsed = goSetPath(rawPath);
  if (parsed === undefined || parsed.rawPath.includes("#")) return undefined;
  const normalized = traefikNormalize(parsed);
  const sanitized = normalized === undefined ? undefined : traefikSanitize(normalized);
  if (sanitized === undefined) return undefined;
  return `${goEscapedPath(sanitized)}${query === "" ? "" : `?${query}`}`;
}
