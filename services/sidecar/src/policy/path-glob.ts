/** Outcome of {@link compilePathGlob}: a matcher, or why the pattern is not one. */
export type PathGlobOutcome = { ok: true; regex: RegExp } | { ok: false; message: string };

const REGEX_SYNTAX = /[\\^$.*+?()[\]{}|/]/g;

/**
 * Compiles a path glob into a regular expression over normalized match paths
 * (see `normalizePath`). `*` matches within one segment (`/files/*.json`);
 * `**`, only as a whole segment, matches any number of segments including none,
 * so `/api/**` covers `/api` and everything below it. Patterns are written in
 * normalized form: a leading `/`, no `.`/`..` or empty segments, no `%`, `;`, `?`
 * or `#`; a trailing slash is ignored, as it is for requests.
 *
 * @example
 * ```ts
 * compilePathGlob("/api/**", { caseSensitive: false }); // matches "/API/v1/chats"
 * ```
 */
export function compilePathGlob(pattern: string, options: { caseSensitive: boolean }): PathGlobOutcome {
  if (!pattern.startsWith("/")) return { ok: false, message: `path "${pattern}" must start with "/"` };
  if (/[%;?#\\\s]/.test(pattern)) {
    return { ok: false, message: `path "${pattern}" must not contain %, ;, ?, #, \\ or whitespace` };
  }
  const trimmed = pattern.length > 1 && pattern.endsWith("/") ? pattern.slice(0, -1) : pattern;
  if (trimmed === "/") return { ok: true, regex: /^\/$/ };
  let source = "";
  for (const segment of trimmed.slice(1).split("/")) {
    if (segment === "" || segment === "." || segment === "..") {
      return { ok: false, message: `path "${pattern}" must be normalized (no empty, "." or ".." segments)` };
    }
    if (segment === "**") {
      source += "(?:/.*)?";
      continue;
    }
    if (segment.includes("**")) {
      return { ok: false, message: `path "${pattern}": "**" must be a whole segment` };
    }
    source += `/${segment
      .split("*")
      .map((part) => part.replace(REGEX_SYNTAX, "\\$&"))
      .join("[^/]*")}`;
  }
  return { ok: true, regex: new RegExp(`^${source}$`, options.caseSensitive ? "u" : "iu") };
}
