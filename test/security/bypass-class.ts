// A bypass class: the minimal set of tricks fast-check shrank a failing attack to, and the kinds
// of violation (per mode) it showed. Later failures that use at least those tricks and show the
// same kind of violation in the same mode count as the same class, so one run lists each
// distinct way through instead of stopping at the first.
import { type AttackCase, describeAttack, type RenderContext, tricksOf } from "./attack-case.js";
import { describeViolation, type Violation } from "./oracle.js";

/** One distinct bypass found in a run. */
export interface BypassClass {
  readonly tricks: readonly string[];
  /** `kind mode` of every violation the shrunk attack showed. */
  readonly signatures: ReadonlySet<string>;
  readonly attack: AttackCase;
  readonly violations: readonly Violation[];
  /** fast-check's seed and path: `FUZZ_SEED=<seed> FUZZ_PATH=<path>` replays exactly this attack. */
  readonly seed: number;
  readonly path: string | null;
}

export function signatureOf(violation: Violation): string {
  return `${violation.kind} ${violation.mode}`;
}

/** Whether a known class accounts for a violation of a new attack. */
export function explains(known: BypassClass, attack: AttackCase, violation: Violation): boolean {
  if (!known.signatures.has(signatureOf(violation))) return false;
  const tricks = new Set(tricksOf(attack));
  return known.tricks.every((trick) => tricks.has(trick));
}

/** A class as the failure report prints it: title, minimal request, what the apps did, replay line. */
export function describeClass(found: BypassClass, index: number, symbolic: RenderContext): string {
  const kinds = [...found.signatures].sort().join("; ");
  const tricks = found.tricks.length === 0 ? "no trick: the plain request" : found.tricks.join(" + ");
  const lines = new Set(found.violations.map(describeViolation));
  return [
    `${index + 1}. ${kinds} — ${tricks}`,
    describeAttack(found.attack, symbolic),
    ...[...lines].map((line) => `  ✗ ${line}`),
    `  replay: FUZZ_SEED=${found.seed}${found.path === null ? "" : ` FUZZ_PATH=${found.path}`} npm run fuzz`,
    `  fast-check value: ${JSON.stringify(found.attack)}`,
  ].join("\n");
}
