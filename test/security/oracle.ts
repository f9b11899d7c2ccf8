// The oracle: what each app stack's handler run is allowed to be, given the request that caused
// it. It looks only at what the app ran and saw, never at the sidecar's answer: a 404 or a
// refusal runs no handler and so cannot fail, a public handler reached without identity is
// fine, and a protected handler reached with the right verified identity is fine.

import { type HandlerName, type HandlerRun, identityField, type StackName } from "./apps/handler-run.js";
import type { CredentialName, CredentialPlace, PolicyVariant } from "./attack-case.js";

/**
 * Which way the request went through the sidecar: proxy mode, nginx asking forward-auth, or the
 * recorded Traefik ForwardAuth shape asking it (test/harness/traefik-forward-auth.ts).
 */
export type Mode = "proxy" | "forward-auth" | "traefik";

/** What a handler needs, as the policy's author means it, whatever method the app ran it as. */
export type Requirement =
  | { readonly kind: "public" }
  | { readonly kind: "scope"; readonly scope: "read" | "write" | "admin" }
  | { readonly kind: "secret" };

/**
 * The requirement of each handler under a policy variant, written down independently of the
 * sidecar's policy code: `/healthz` public; the event stream and WebSocket need `read` (the
 * handler is the stream, whatever the method); `/admin/**` needs `admin`; cron needs the
 * secret; under reads-public, reads of other routes are public and writes need `write`;
 * under all-private, they all need `read`.
 */
export function requirement(policy: PolicyVariant, handler: HandlerName): Requirement {
  switch (handler) {
    case "health":
      return { kind: "public" };
    case "events":
    case "ws":
      return { kind: "scope", scope: "read" };
    case "admin":
      return { kind: "scope", scope: "admin" };
    case "cron":
      return { kind: "secret" };
    case "home":
    case "items.list":
      return policy === "example" ? { kind: "public" } : { kind: "scope", scope: "read" };
    case "items.create":
    case "items.delete":
      return policy === "example" ? { kind: "scope", scope: "write" } : { kind: "scope", scope: "read" };
  }
}

// admin ⊃ write ⊃ read, as @latchkey/token defines it; other scopes match exactly.
const IMPLIED: Readonly<Record<string, readonly string[]>> = {
  admin: ["admin", "write", "read"],
  write: ["write", "read"],
  read: ["read"],
};

function grants(scopes: readonly string[], required: string): boolean {
  return scopes.some((scope) => (IMPLIED[scope] ?? [scope]).includes(required));
}

/** A real key the test issued: its id and scopes, and the identity headers the apps saw for it. */
export interface KnownKey {
  readonly id: string;
  readonly scopes: readonly string[];
  /**
   * `field=value` of every identity header the apps saw for this key when the test calibrated
   * (a plain authorized request through every target), fields spelled as {@link identityField} does.
   */
  readonly legitimate: ReadonlySet<string>;
}

/** What the oracle needs to know about the request that caused a run. */
export interface SentRequest {
  readonly policy: PolicyVariant;
  readonly mode: Mode;
  readonly credential: CredentialName;
  readonly place: CredentialPlace;
}

export type ViolationKind = "unauthorized-handler" | "forged-identity" | "token-leak";

/** One thing an app did that it must not do behind the sidecar. */
export interface Violation {
  readonly kind: ViolationKind;
  readonly mode: Mode;
  readonly stack: StackName;
  readonly handler: HandlerName;
  readonly method: string;
  readonly detail: string;
}

/** The keys and secrets the oracle compares runs against. */
export interface OracleKeys {
  readonly read: KnownKey;
  readonly admin: KnownKey;
  /** Every real secret the test holds (key tokens, the cron secret), by the name a report may print. */
  readonly secrets: ReadonlyMap<string, string>;
}

/**
 * Judges one handler run:
 * - `forged-identity`: the stack saw an identity header that is not one the sidecar gives for a
 *   real key the request carried (any value at all when it carried none); on a protected
 *   handler this is also the reason it ran, and is reported once, as this;
 * - `unauthorized-handler`: otherwise, a handler that needs a scope ran without the carried
 *   key's identity (exactly one key id, the carried key's, whose scopes grant it), or one that
 *   needs the cron secret ran for a request that did not send it in a header;
 * - `token-leak`: a `token` query parameter holding a real key or secret reached the app.
 */
export function judge(run: HandlerRun, sent: SentRequest, keys: OracleKeys): Violation[] {
  const violations: Violation[] = [];
  const violation = (kind: ViolationKind, detail: string) =>
    violations.push({
      kind,
      mode: sent.mode,
      stack: run.stack,
      handler: run.handler,
      method: run.method,
      detail,
    });
  const carried =
    sent.credential === "read" || sent.credential === "admin" ? keys[sent.credential] : undefined;
  const seen = run.identityHeaders.map(([name, value]) => ({ name, field: identityField(name), value }));

  const forged = seen.filter(({ field, value }) => carried?.legitimate.has(`${field}=${value}`) !== true);
  const needs = requirement(sent.policy, run.handler);
  const keyIds = seen.filter(({ field }) => field === "x-latchkey-key-id").map(({ value }) => value);
  let missing: string | undefined;
  if (needs.kind === "scope") {
    const verified = carried !== undefined && keyIds.length === 1 && keyIds[0] === carried.id;
    if (!verified || !grants(carried.scopes, needs.scope)) missing = `needs scope ${needs.scope}`;
  } else if (needs.kind === "secret" && (sent.credential !== "cron" || sent.place === "query")) {
    missing = "needs the cron secret";
  }
  // A forged identity on a protected handler is one finding, not two: the forgery is its cause.
  if (forged.length > 0) {
    violation(
      "forged-identity",
      `saw ${forged.map(({ name, value }) => `${name}: ${JSON.stringify(value)}`).join(", ")}` +
        (carried === undefined ? " with no valid key sent" : ` with the ${sent.credential} key sent`) +
        (missing === undefined ? "" : ` (the handler ${missing})`),
    );
  } else if (missing !== undefined) {
    violation(
      "unauthorized-handler",
      `${missing}; ` +
        (keyIds.length === 0
          ? "the app saw no identity"
          : `the app saw key id ${keyIds.map((id) => JSON.stringify(id)).join(", ")}`) +
        `, credential sent: ${sent.credential}${sent.credential === "none" ? "" : ` (${sent.place})`}`,
    );
  }

  for (const [name, secret] of keys.secrets) {
    if (run.queryTokens.includes(secret)) violation("token-leak", `the app's query held token=<${name}>`);
  }
  return violations;
}

/** One line for a report. */
export function describeViolation(violation: Violation): string {
  return `${violation.mode} → ${violation.stack}: ${violation.kind}, ran ${violation.handler} as ${violation.method}: ${violation.detail}`;
}
