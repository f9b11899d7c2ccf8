import type { VerifiedKey } from "../key-checker.js";
import { KEYCHAIN_NOT_ALLOWED, type Refusal, WRONG_OWNER } from "../refusal.js";
import type { KeyRequirements, RouteRule } from "./policy.js";

/** Why a verified key may not use this route, or undefined when it may. */
export type BindingRefusal =
  | { readonly label: "wrong_team"; readonly refusal: Refusal }
  | { readonly label: "keychain_not_allowed"; readonly refusal: Refusal }
  | { readonly label: "wrong_environment"; readonly refusal: Refusal }
  | { readonly label: "wrong_owner"; readonly refusal: Refusal };

/**
 * Whether a key that exists may be used on this route at all: one of its
 * teams and environments. Undefined when it may; otherwise the route's one
 * answer for every credential it does not accept (`notAcceptedHere`), so the
 * refusal of another team's key says no more than that of an unknown key.
 * Checked before anything else a key's answer could tell (a missing scope, a
 * used-up budget), which would otherwise say the key exists.
 *
 * @example
 * ```ts
 * placementRefusal(rule, otherTeamsKey); // { label: "wrong_team", refusal: 403 }
 * ```
 */
export function placementRefusal(
  rule: RouteRule,
  key: Pick<VerifiedKey, "teamId" | "environment">,
): BindingRefusal | undefined {
  const access = rule.access as Partial<KeyRequirements>;
  const refusal = access.notAccepted;
  if (refusal === undefined) return undefined;
  if (access.teams !== undefined && !access.teams.has(key.teamId)) return { label: "wrong_team", refusal };
  if (access.environments !== undefined && !access.environments.has(key.environment)) {
    return { label: "wrong_environment", refusal };
  }
  return undefined;
}

/**
 * Checks what a route asks of a verified key beyond its scopes: one of the
 * route's teams and environments (`placementRefusal`), a keychain's secret
 * only where the route allows keychains, and an owner equal to the path's
 * `{owner}` segment.
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
  const placed = placementRefusal(rule, key);
  if (placed !== undefined) return placed;
  const access = rule.access as Partial<KeyRequirements>;
  if (key.keychainId !== undefined && access.keychains !== true) {
    return { label: "keychain_not_allowed", refusal: KEYCHAIN_NOT_ALLOWED };
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
