/**
 * One breakage of the repository that the deploy tests must catch: `apply` turns the text
 * of `file` (relative to the repository root) into the broken text. Each file in this
 * folder other than this one exports `mutations: Mutation[]`; test/deploy/mutation-check.ts
 * applies each to a copy of the repository and expects `vitest run test/deploy` to fail.
 */
export interface Mutation {
  readonly name: string;
  readonly file: string;
  readonly apply: (text: string) => string;
}

/**
 * Replaces `from` with `to` in `text`, and fails when `from` is not there: a mutation
 * whose anchor has gone would otherwise test nothing.
 */
export function replaceOnce(text: string, from: string | RegExp, to: string): string {
  const found = typeof from === "string" ? text.includes(from) : from.test(text);
  if (!found) throw new Error(`mutation anchor not found: ${String(from)}`);
  return text.replace(from, to);
}
