import type { KeyFormat } from "./key-format.js";
import { bodySource, type KeyFormats, parseTokenWith } from "./key-formats.js";

// A token standing alone: no letter, digit, `_` or `-` right before or after it (a sentence's full stop may follow).
const BODY_CHARS = "A-Za-z0-9_-";

/**
 * The regular-expression source of one format's tokens (no anchors, no
 * lookaround), in the subset both JavaScript and Go's RE2 (gitleaks) read.
 *
 * @example
 * ```ts
 * formatSource(oag); // "oag_[0-9a-f]{32}"
 * ```
 */
export function formatSource(format: KeyFormat): string {
  // A literal is letters, digits, `_` and `-`: nothing to escape outside a class.
  return `${format.literal}${bodySource(format)}`;
}

/**
 * A pattern matching a token of any of `formats` standing alone (not inside a
 * longer word), for secret scanners. Shape only: {@link findTokensWith} adds
 * each format's own checks (checksum, claims, signature where keys are held).
 *
 * @example
 * ```ts
 * tokenPatternFor(formats).test(line);
 * ```
 */
export function tokenPatternFor(formats: KeyFormats): RegExp {
  const alternatives = formats.formats.map(formatSource).join("|");
  return new RegExp(`(?<![${BODY_CHARS}])(?:${alternatives})(?![${BODY_CHARS}])`);
}

/**
 * Finds every token of an accepted format in a text, for leak scanning: each
 * match of {@link tokenPatternFor} that also passes {@link parseTokenWith}.
 *
 * @example
 * ```ts
 * findTokensWith(formats, logLine); // ["og_live_…"] when a key leaked
 * ```
 */
export function findTokensWith(formats: KeyFormats, text: string): string[] {
  const global = new RegExp(tokenPatternFor(formats).source, "g");
  const found: string[] = [];
  for (const match of text.matchAll(global)) {
    // Scanning finds keys whatever their expiry: a leaked expired key is still worth reporting.
    if (parseTokenWith(formats, match[0], 0).ok) found.push(match[0]);
  }
  return found;
}
