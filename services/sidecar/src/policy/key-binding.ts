import type { VerifiedKey } from "../key-checker.js";
import { KEYCHAIN_NOT_ALLOWED, type Refusal, WRONG_OWNER, wrongEnvironment } from "../refusal.js";
import type { KeyRequirements, RouteRule } from "./policy.js";

/** Why a verified key may not use this route, or undefined when it may. */
export type BindingRefusal =
  | { readonly label: "keychain_not_allowed"; readonly refusal: Refusal }
  | { readonly label: "wrong_environment"; readonly refusal: Refusal }
  | { readonly label: "wrong_owner"; readonly refusal: Refusal };

/**
 * Checks what a route asks of a verified key beyond its scopes: a keychain's
 * secret only where the route allows keychains, one of the route's
 * environments, and an owner equal to the path's `{owner}` segment.
 * The owner is compared exactly (case and all) with the segment as the policy
 * matched it (percent-decoded once by `normalizePath`), and only when the
 * segment the app receives decodes to the same text: a segment with
 * `;parameters` is read differently by different stacks, so it never equals
 * an owner. A key without an owner never matches.
 *
 * @example
 * ```ts
 * keyBindingRefusal(rule, key, "/agents/bob/card", "/agents/bob/card"); // wrong_owner for alice's key
 * ```
 */
export function keyBindingRefusal(
  rule: RouteRule,
  key: VerifiedKey,
  matchPath: string,
  path: string,
): BindingRefusal | undefined {
  const access = rule.access as Partial<KeyRequirements>;
  if (key.keychainId !== undefined && access.keychains !== true) {
    return { label: "keychain_not_allowed", refusal: KEYCHAIN_NOT_ALLOWED };
  }
  const environments = access.environments;
  if (environments !== undefined && !environments.has(key.environment)) {
    return { label: "wrong_environment", refusal: wrongEnvironment(environments) };
  }
  if (access.ownerFromPath === true) {
    const owner = ownerInPath(rule, matchPath, path);
    if (owner === undefined || key.owner === undefined || key.owner !== owner) {
      return { label: "wrong_owner", refusal: WRONG_OWNER };
    }
  }
  return undefined;
}

/**
 * The `{owner}` segment of the rule's pattern that matches `matchPath`, when
 * the forwarded `path`'s segment at the same place decodes to exactly it;
 * otherwise undefined. (`normalizePath` keeps the two paths' segments one to one.)
 */
export function ownerInPath(rule: RouteRule, matchPath: string, path: string): string | undefined {
  for (const pattern of rule.patterns) {
    const match = pattern.exec(matchPath);
    const owner = match?.groups?.owner;
    const start = match?.indices?.groups?.owner?.[0];
    if (owner === undefined || start === undefined) continue;
    let index = 0;
    for (let i = 0; i < start; i++) if (matchPath.charCodeAt(i) === 0x2f) index++;
    const forwarded = path.split("/")[index];
    if (forwarded === undefined || decodeOnce(forwarded) !== owner) return undefined;
    return owner;
  }
  return undefined;
}

function decodeOnce(segment: string): string | undefined {
  if (!segment.includes("%")) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
