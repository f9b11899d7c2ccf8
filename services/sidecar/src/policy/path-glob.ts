/** Outcome of {@link compilePathGlob}: a matcher, or why the pattern is not one. */
export type PathGlobOutcome =
  | {
      ok: true;
      regex: RegExp;
      /** Whether the pattern has the `{owner}` parameter (the regex's `owner` group). */
      hasOwner: boolean;
    }
  | { ok: false; message: string };

/** The one path parameter a pattern may name, as a whole segment. */
export const OWNER_PARAMETER = "{owner}";

const REGEX_SYNTAX = /[\\^$.*+?()[\]{}|/]/g;

/**
 * Compiles a path glob into a regular expression over normalized match paths
 * (see `normalizePath`). `*` matches within one segment (`/files/*.json`);
 * `**`, only as a whole segment, matches any number of segments including none,
 * so `/api/**` covers `/api` and everything below it. `{owner}`, only as a
 * whole segment and once, matches one segment like `*` and captures it (the
 * regex's `owner` group) for a rule that requires the key's owner to equal it. Patterns are written in
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
  if (trimmed === "/") return { ok: true, regex: /^\/$/, hasOwner: false };
  let source = "";
  let hasOwner = false;
  for (const segment of trimmed.slice(1).split("/")) {
    if (segment === OWNER_PARAMETER) {
      if (hasOwner) return { ok: false, message: `path "${pattern}": {owner} may appear once` };
      hasOwner = true;
      source += "/(?<owner>[^/]+)";
      continue;
    }
    if (segment.includes("{") || segment.includes("}")) {
      return {
        ok: false,
        message: `path "${pattern}": the only path parameter is {owner}, as a whole segment`,
      };
    }
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
  // `d` (match indices) only where the owner is read, to keep plain matching as it was.
  const flags = `${hasOwner ? "d" : ""}${options.caseSensitive ? "" : "i"}u`;
  return { ok: true, regex: new RegExp(`^${source}$`, flags), hasOwner };
}
