import { timingSafeEqual } from "node:crypto";
import type { StoredRequiredSecret } from "../db/tables.js";

/** What a keychain's grant for one package says. */
export interface GrantTerms {
  readonly version: string;
  readonly sha256: Uint8Array;
  readonly names: readonly string[];
}

/** What the registry says about the version a package presents. */
export interface RegisteredVersion {
  readonly public: boolean;
  readonly sha256: Uint8Array;
  readonly required: readonly StoredRequiredSecret[];
}

/** What the runtime hosting a package presents: which package, which version, which contents. */
export interface PresentedPackage {
  readonly name: string;
  readonly version: string;
  readonly sha256: Uint8Array;
}

/** Why nothing is released to a package. */
export type ReleaseRefusal =
  | "not_granted"
  | "version_mismatch"
  | "digest_mismatch"
  | "not_registered"
  | "private";

/** A name declared or granted that is not released by the rules, and why. */
export interface WithheldName {
  readonly name: string;
  readonly reason: "not_granted" | "not_declared";
}

/** The three rules' verdict: the names to release, or a refusal with a message saying what to fix. */
export type ReleaseDecision =
  | { readonly ok: true; readonly names: readonly string[]; readonly withheld: readonly WithheldName[] }
  | { readonly ok: false; readonly reason: ReleaseRefusal; readonly message: string };

/**
 * The one place the keychain's three rules are decided (ResolveSecrets calls
 * it; nothing else releases a secret):
 *
 * 1. pinned content: the package presents the grant's version and digest, and
 *    the registered version has that digest too;
 * 2. only public packages;
 * 3. double opt-in: the names released are those the version declares
 *    (`keychain.required`) and the grant names; a name the package never
 *    declared is never released, whatever the grant says.
 *
 * Digests are compared in constant time.
 *
 * @example
 * ```ts
 * const decision = decideRelease(grant, registered, { name: "@user/package", version, sha256 });
 * if (!decision.ok) refuse(decision.reason, decision.message);
 * ```
 */
export function decideRelease(
  grant: GrantTerms | undefined,
  registered: RegisteredVersion | undefined,
  presented: PresentedPackage,
): ReleaseDecision {
  const { name, version } = presented;
  if (grant === undefined) {
    return refuse("not_granted", `the keychain has no grant for ${name}: no secret released`);
  }
  if (grant.version !== version) {
    return refuse(
      "version_mismatch",
      `the grant for ${name} pins version ${grant.version}, the package presented ${version}: ` +
        "no secret released (grant the new version to share with it)",
    );
  }
  if (!sameDigest(grant.sha256, presented.sha256)) {
    return refuse(
      "digest_mismatch",
      `the grant for ${name}@${version} pins sha256 ${hex(grant.sha256)}, the package presented ` +
        `${hex(presented.sha256)}: its contents changed since the grant, so no secret is released`,
    );
  }
  if (registered === undefined) {
    return refuse(
      "not_registered",
      `${name}@${version} is not a registered package version: no secret released`,
    );
  }
  if (!sameDigest(registered.sha256, presented.sha256)) {
    return refuse(
      "digest_mismatch",
      `${name}@${version} is registered with sha256 ${hex(registered.sha256)}, the package presented ` +
        `${hex(presented.sha256)}: no secret released`,
    );
  }
  if (!registered.public) {
    return refuse("private", `${name}@${version} is not public; only public packages receive secrets`);
  }
  const declared = new Set(registered.required.map((entry) => entry.name));
  const granted = new Set(grant.names);
  const names = [...declared].filter((each) => granted.has(each)).sort();
  const withheld: WithheldName[] = [
    ...[...declared]
      .filter((each) => !granted.has(each))
      .map((each) => ({ name: each, reason: "not_granted" as const })),
    ...[...granted]
      .filter((each) => !declared.has(each))
      .map((each) => ({ name: each, reason: "not_declared" as const })),
  ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { ok: true, names, withheld };
}

function refuse(reason: ReleaseRefusal, message: string): ReleaseDecision {
  return { ok: false, reason, message: `${reason}: ${message}` };
}

function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A digest as 64 lower-case hex digits. */
export function hex(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString("hex");
}
