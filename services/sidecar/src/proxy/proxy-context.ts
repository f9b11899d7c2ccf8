import type { Logger } from "pino";
import type { Dispatcher } from "undici";
import type { AccessLog } from "../access-log.js";
import type { Authorize } from "../authorize.js";
import type { EnforcementMode } from "../config.js";
import type { Decision } from "../decision.js";
import type { LiveConnections } from "../live-connections.js";
import type { SidecarMetrics } from "../metrics.js";
import type { RateLimitStep } from "../rate-limit/rate-limit-step.js";
import type { RequestTracing } from "../request-span.js";

/** What the request, upgrade and forward-auth handlers share. */
export interface ProxyContext {
  /** Keep-alive connections to the upstream. */
  readonly upstream: Dispatcher;
  readonly upstreamUrl: URL;
  /** The upstream URL's path without a trailing slash ("" for none), prefixed to every path. */
  readonly basePath: string;
  readonly upstreamHeadersTimeoutMs: number;
  readonly authorize: Authorize;
  /** The policy decides on hosts: `Host` goes upstream in the canonical form it was matched in. */
  readonly canonicalHost: boolean;
  /** Applies the rate limits to a decision (see `rate-limit/rate-limit-step.ts`). */
  readonly rateLimit: RateLimitStep;
  readonly mode: EnforcementMode;
  readonly isTrusted: (address: string) => boolean;
  readonly liveConnections: LiveConnections;
  readonly metrics: SidecarMetrics;
  /** Counts a decided request's use of its key (`decision-usage.ts`); called once per decision. */
  readonly recordUsage: (decision: Decision) => void;
  readonly accessLog: AccessLog;
  readonly logger: Logger;
  /** Set when tracing is on (`OTEL_TRACES_EXPORTER`); undefined otherwise, and every tracing step is skipped. */
  readonly tracing: RequestTracing | undefined;
}

/** Splits a request target into path and query (without `?`). */
export function splitTarget(target: string): [path: string, query: string] {
  const index = target.indexOf("?");
  return index === -1 ? [target, ""] : [target.slice(0, index), target.slice(index + 1)];
}
