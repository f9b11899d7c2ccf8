import type { Decision } from "../decision.js";
import type { RateLimitedRequest, RateLimiter } from "./rate-limiter.js";

/** The rate-limit step of the decision path: the decision, with its limits applied. */
export type RateLimitStep = (
  decision: Decision | Promise<Decision>,
  request: RateLimitedRequest,
) => Decision | Promise<Decision>;

/** The step when no limit is configured: the decision as it is, nothing counted. */
export const NO_RATE_LIMITS: RateLimitStep = (decision) => decision;

/**
 * The step for a limiter: synchronous on a synchronous decision (the cache-hit
 * path allocates no promise or closure), after the verifier's answer otherwise.
 * Always on outside `disabled` mode: any key may carry limits of its own.
 */
export function rateLimitStep(limiter: RateLimiter): RateLimitStep {
  return (decision, request) =>
    decision instanceof Promise
      ? decision.then((decided) => limiter.check(decided, request))
      : limiter.check(decision, request);
}
