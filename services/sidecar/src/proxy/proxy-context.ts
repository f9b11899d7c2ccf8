import type { Logger } from "pino";
import type { Dispatcher } from "undici";
import type { AccessLog } from "../access-log.js";
import { type Authorize, type Decision, notChecked } from "../authorize.js";
import type { EnforcementMode } from "../config.js";
import type { LiveConnections } from "../live-connections.js";
import type { SidecarMetrics } from "../metrics.js";
import type { ScannedRequest } from "./forward-headers.js";

/** What the request, upgrade and forward-auth handlers share. */
export interface ProxyContext {
  /** Keep-alive connections to the upstream. */
  readonly upstream: Dispatcher;
  readonly upstreamUrl: URL;
  /** The upstream URL's path without a trailing slash ("" for none), prefixed to every path. */
  readonly basePath: string;
  readonly upstreamHeadersTimeoutMs: number;
  readonly authorize: Authorize;
  readonly mode: EnforcementMode;
  readonly isTrusted: (address: string) => boolean;
  readonly liveConnections: LiveConnections;
  readonly metrics: SidecarMetrics;
  readonly accessLog: AccessLog;
  readonly logger: Logger;
}

/** Splits a request target into path and query (without `?`). */
export function splitTarget(target: string): [path: string, query: string] {
  const index = target.indexOf("?");
  return index === -1 ? [target, ""] : [target.slice(0, index), target.slice(index + 1)];
}

/** Resolves a decision that may still be waiting for the verifier. */
export function whenDecided(
  decision: Decision | Promise<Decision>,
  then: (decision: Decision) => void,
  onError: (error: unknown) => void,
): void {
  if (decision instanceof Promise) decision.then(then, onError);
  else then(decision);
}

/**
 * The decision on a request as the upgrade and forward-auth handlers need it:
 * unchecked in `disabled` mode, otherwise the policy's and verifier's.
 * `forwardedAsSent` is true for forward-auth, where the app gets the request
 * from another proxy exactly as the client sent it.
 */
export function decide(
  context: ProxyContext,
  method: string,
  rawPath: string,
  query: string,
  scanned: ScannedRequest,
  forwardedAsSent: boolean,
): Decision | Promise<Decision> {
  if (context.mode === "disabled") return notChecked(rawPath, query);
  return context.authorize({
    method,
    rawPath,
    query,
    bearer: scanned.bearer,
    apiKey: scanned.apiKey,
    methodOverride: scanned.methodOverride,
    strippedSensitive: scanned.strippedSensitive,
    forwardedAsSent,
  });
}
