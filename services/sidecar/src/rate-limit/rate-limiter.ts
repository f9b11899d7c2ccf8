import type { Decision } from "../decision.js";
import { withRateLimit } from "../decision.js";
import type { VerifiedKey } from "../key-checker.js";
import type { Policy, RouteRule } from "../policy/policy.js";
import { rateLimited } from "../refusal.js";
import { clientAddress } from "./client-address.js";
import type { RateLimitFile, RateLimitSpec } from "./rate-limit-schema.js";
import { WindowCounter } from "./window-counter.js";

/** One limit and the counter it is checked against. */
interface Slot {
  readonly spec: RateLimitSpec;
  /** The counter's id (subject, limit name, window), to re-attach it after a sweep. */
  readonly id: string;
  counter: WindowCounter;
}

/** A key's limits, resolved once per verified-key object (it lives as long as its cache entry). */
interface KeyEntry {
  readonly slots: Slot[];
  readonly routes: Map<RouteRule, Slot[]>;
}

/** What the limiter needs to know about the request beside its decision. */
export interface RateLimitedRequest {
  /** The TCP peer's address. */
  readonly peer: string;
  readonly scanned: { readonly forwardedFor: string | undefined };
}

/** A count to share with peers: `[counter id, window index, count]`. */
export type CountDelta = readonly [id: string, index: number, count: number];

/** Options of {@link createRateLimiter}. */
export interface RateLimiterOptions {
  /** The rate-limit file (tiers, scope defaults); undefined when none is configured. */
  readonly file: RateLimitFile | undefined;
  /** The route policy, whose rules may carry `rateLimit`. */
  readonly policy: Policy;
  /** Whether an address is a trusted proxy (whose X-Forwarded-For is believed). */
  readonly isTrusted: (address: string) => boolean;
  /** Counters kept at most; beyond it the oldest is dropped (see the README). */
  readonly maxCounters: number;
  /** Sidecars assumed to share the limits while no peer has been heard (the outage share's divisor floor). */
  readonly expectedPeers: number;
  /** Wall clock in ms (windows are aligned to the epoch so every sidecar agrees on them). */
  readonly now?: () => number;
  /** Called once per tier name that no `tiers` entry matches (for a log line). */
  readonly onUnknownTier?: (tier: string) => void;
}

/**
 * The sidecar's rate limiter: counts admitted requests per limit in sliding
 * windows, adds what peers report, and turns a request over a limit into a
 * 429 with `Retry-After`, `RateLimit-Policy` and `RateLimit`.
 */
export interface RateLimiter {
  /**
   * The one call on the request path: the decision unchanged when no limit
   * applies, with `RateLimit` headers when the request fits, or a
   * `rate_limited` refusal when it does not. Refused requests are not counted.
   */
  check(decision: Decision, request: RateLimitedRequest): Decision;
  /** Counts admitted since the last call, for peers; empty when there are none. */
  takeDeltas(): CountDelta[];
  /** Adds a peer's count. */
  addRemote(id: string, index: number, count: number): void;
  /**
   * Counting with peers (true) or alone (false, NATS unreachable): alone, each
   * sidecar admits up to `limit / peers` of every limit.
   */
  setShared(shared: boolean, peers: number): void;
  /** Drops counters whose windows have passed; returns how many are left. */
  sweep(): number;
}

const BUILT_IN = ["admin", "write", "read"] as const;

/**
 * Builds the rate limiter from the rate-limit file and the policy's rules.
 *
 * @example
 * ```ts
 * const limiter = createRateLimiter({ file, policy, isTrusted, maxCounters: 100_000, expectedPeers: 1 });
 * const decided = limiter.check(decision, request);
 * ```
 * @throws Error when a rule names a tier the file does not define.
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const now = options.now ?? Date.now;
  const tiers = options.file?.tiers ?? {};
  const scopes = options.file?.scopes ?? {};
  const unknownTier = options.file?.unknownTier;
  const counters = new Map<string, WindowCounter>();
  const dirty = new Set<WindowCounter>();
  const keys = new WeakMap<VerifiedKey, KeyEntry>();
  const reportedTiers = new Set<string>();
  const ruleLimits = new Map<RouteRule, { id: string; limits: readonly RateLimitSpec[] }>();
  let shared = true;
  let divisor = Math.max(1, options.expectedPeers);

  for (const [index, rule] of [...options.policy.rules, options.policy.fallback].entries()) {
    const written = rule.rateLimit;
    if (written === undefined) continue;
    const limits = Array.isArray(written) ? written : tiers[(written as { tier: string }).tier];
    if (limits === undefined) {
      throw new Error(
        `${rule.label}: rateLimit names tier "${(written as { tier: string }).tier}", which LATCHKEY_RATE_LIMITS does not define`,
      );
    }
    ruleLimits.set(rule, { id: rule === options.policy.fallback ? "rd" : `r${index}`, limits });
  }

  function counter(id: string, windowMs: number): WindowCounter {
    let found = counters.get(id);
    if (found === undefined) {
      if (counters.size >= options.maxCounters) {
        // The oldest entry goes: an address flood must not grow memory without bound.
        const oldest = counters.values().next().value as WindowCounter;
        counters.delete(oldest.id);
        oldest.evicted = true;
        dirty.delete(oldest);
      }
      found = new WindowCounter(id, windowMs);
      counters.set(id, found);
    }
    return found;
  }

  function slots(subject: string, limits: readonly RateLimitSpec[]): Slot[] {
    return limits.map((spec) => {
      const id = `${subject}|${spec.name}|${spec.windowMs}`;
      return { spec, id, counter: counter(id, spec.windowMs) };
    });
  }

  function keyLimits(key: VerifiedKey): readonly RateLimitSpec[] | undefined {
    // The key's own limits (Issue/Update) first; the token-service validated them.
    const own = key.rateLimits;
    if (own !== undefined && own.length > 0) return own;
    const tier = key.tier ?? key.metadata.tier;
    if (tier !== undefined && tier !== "") {
      const limits = tiers[tier];
      if (limits !== undefined) return limits;
      if (!reportedTiers.has(tier) && reportedTiers.size < 100) {
        reportedTiers.add(tier);
        options.onUnknownTier?.(tier);
      }
      if (unknownTier !== undefined) return tiers[unknownTier];
    }
    for (const scope of BUILT_IN) {
      const limits = scopes[scope];
      if (limits !== undefined && key.scopes.includes(scope)) return limits;
    }
    return undefined;
  }

  function keyEntry(key: VerifiedKey): KeyEntry {
    let entry = keys.get(key);
    if (entry === undefined) {
      const limits = keyLimits(key);
      entry = { slots: limits === undefined ? [] : slots(`k:${key.id}`, limits), routes: new Map() };
      keys.set(key, entry);
    }
    return entry;
  }

  /** Re-attaches slots whose counters were swept, so a long-cached key keeps counting where peers do. */
  function live(list: Slot[]): Slot[] {
    for (const slot of list) {
      if (slot.counter.evicted) slot.counter = counter(slot.id, slot.spec.windowMs);
    }
    return list;
  }

  function evaluate(decision: Decision, first: Slot[], second: Slot[]): Decision {
    const at = now();
    let refusedMs = -1;
    for (let l = 0; l < 2; l += 1) {
      for (const { spec, counter: c } of l === 0 ? first : second) {
        const budget = shared ? spec.limit : spec.limit / divisor;
        if (c.estimate(at, shared) + 1 > budget) {
          refusedMs = Math.max(refusedMs, c.msUntilAdmitted(at, budget, shared));
        }
      }
    }
    const refused = refusedMs >= 0;
    if (!refused)
      for (let l = 0; l < 2; l += 1) for (const slot of l === 0 ? first : second) admit(slot.counter);
    // RateLimit-Policy: "name";q=…;w=… ; RateLimit: "name";r=…;t=… (draft-ietf-httpapi-ratelimit-headers-09).
    let policyField = "";
    let stateField = "";
    for (let l = 0; l < 2; l += 1) {
      for (const { spec, counter: c } of l === 0 ? first : second) {
        const budget = shared ? spec.limit : spec.limit / divisor;
        const estimate = c.estimate(at, shared);
        const remaining = Math.max(0, Math.floor(budget - estimate));
        const waitMs =
          remaining === 0 ? c.msUntilAdmitted(at, budget, shared) : (c.index + 1) * spec.windowMs - at;
        const separator = policyField === "" ? "" : ", ";
        policyField += `${separator}"${spec.name}";q=${spec.limit};w=${spec.windowMs / 1000}`;
        stateField += `${separator}"${spec.name}";r=${remaining};t=${Math.max(0, Math.ceil(waitMs / 1000))}`;
      }
    }
    const headers = ["ratelimit-policy", policyField, "ratelimit", stateField];
    if (!refused) return withRateLimit(decision, headers, undefined);
    const retryAfter = Math.max(1, Math.ceil(refusedMs / 1000));
    return withRateLimit(decision, headers, rateLimited(retryAfter, headers));
  }

  function admit(c: WindowCounter): void {
    c.admit();
    dirty.add(c);
  }

  return {
    check(decision, request) {
      if (!decision.allow || decision.rule === undefined) return decision;
      const rule = decision.rule;
      const route = ruleLimits.get(rule);
      const key = decision.key;
      if (key !== undefined) {
        const entry = keyEntry(key);
        let routeSlots = NO_SLOTS;
        // An optional-key route's own limits are the anonymous caller's (Kong's anonymous consumer):
        // a request with a key is limited by the key's limits only.
        if (route !== undefined && rule.access.kind !== "optional-key") {
          let found = entry.routes.get(rule);
          if (found === undefined) {
            found = slots(`${route.id}|k:${key.id}`, route.limits);
            entry.routes.set(rule, found);
          }
          routeSlots = live(found);
        }
        const keySlots = live(entry.slots);
        if (keySlots.length === 0 && routeSlots.length === 0) return decision;
        return evaluate(decision, keySlots, routeSlots);
      }
      if (route === undefined) return decision;
      // Public routes, and anonymous requests on optional-key routes, count per client address;
      // secret routes per route (one shared secret).
      const subject =
        rule.access.kind === "public" || rule.access.kind === "optional-key"
          ? `${route.id}|a:${clientAddress(request.peer, request.scanned.forwardedFor, options.isTrusted)}`
          : `${route.id}|s`;
      return evaluate(decision, slots(subject, route.limits), NO_SLOTS);
    },
    takeDeltas() {
      const deltas: CountDelta[] = [];
      for (const c of dirty) {
        if (c.localPrevious > c.sentPrevious)
          deltas.push([c.id, c.index - 1, c.localPrevious - c.sentPrevious]);
        if (c.localCurrent > c.sentCurrent) deltas.push([c.id, c.index, c.localCurrent - c.sentCurrent]);
        c.sentPrevious = c.localPrevious;
        c.sentCurrent = c.localCurrent;
      }
      dirty.clear();
      return deltas;
    },
    addRemote(id, index, count) {
      const windowMs = Number(id.slice(id.lastIndexOf("|") + 1));
      if (!Number.isInteger(windowMs) || windowMs < 1000) return;
      const c = counter(id, windowMs);
      c.roll(Math.floor(now() / windowMs));
      c.addRemote(index, count);
    },
    setShared(value, peers) {
      shared = value;
      divisor = Math.max(1, options.expectedPeers, peers);
    },
    sweep() {
      const at = now();
      for (const c of counters.values()) {
        if (dirty.has(c)) continue;
        if (c.index + 1 < Math.floor(at / c.windowMs)) {
          counters.delete(c.id);
          c.evicted = true;
        }
      }
      return counters.size;
    },
  };
}

const NO_SLOTS: Slot[] = [];
