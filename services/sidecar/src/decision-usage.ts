import { UsageOutcome } from "@latchkey/proto";
import type { Decision, DecisionLabel } from "./decision.js";
import type { KeyChecker } from "./key-checker.js";

/** The usage outcome of each decision label that can carry a key; the others are not counted per key. */
const USAGE_OUTCOMES: Partial<Record<DecisionLabel, UsageOutcome>> = {
  key: UsageOutcome.ALLOWED,
  insufficient_scope: UsageOutcome.INSUFFICIENT_SCOPE,
  // A key refused for where it is used (another team, environment, owner's path): also a 403 for what it
  // may do. Counted for its own team, which can then see its key presented where it is not accepted.
  wrong_team: UsageOutcome.INSUFFICIENT_SCOPE,
  wrong_environment: UsageOutcome.INSUFFICIENT_SCOPE,
  wrong_owner: UsageOutcome.INSUFFICIENT_SCOPE,
  rate_limited: UsageOutcome.RATE_LIMITED,
  usage_exceeded: UsageOutcome.USAGE_EXCEEDED,
};

/**
 * The sidecar's usage counting: each decided request that names a key is
 * recorded once, with the outcome the sidecar decided (its verifier counts
 * nothing itself: `usageCounting: "caller"`). A no-op for a key checker
 * without usage (a test stand-in).
 *
 * @example
 * ```ts
 * const recordUsage = createDecisionUsage(verifier);
 * recordUsage(decision);
 * ```
 */
export function createDecisionUsage(checker: KeyChecker): (decision: Decision) => void {
  const usage = checker.usage;
  if (usage === undefined) return () => {};
  return (decision) => {
    const key = decision.key;
    if (key === undefined) return;
    const outcome = USAGE_OUTCOMES[decision.label];
    if (outcome !== undefined) usage.record(key.id, key.teamId, outcome);
  };
}
