/** Why a request's host was refused (400): each is a host two stacks could read two ways. */
export type HostRejection =
  | "missing_host"
  | "duplicate_host"
  | "invalid_host"
  | "not_canonical_host"
  | "conflicting_host";

/** A host read from a request: its canonical name and the port, when one was given. */
export type NormalizedHost =
  | {
      readonly ok: true;
      /** Lower case, without a trailing dot or port; an IPv6 literal keeps its brackets. */
      readonly name: string;
      /** `:8080`, or "" when the authority names no port. */
      readonly port: string;
    }
  | { readonly ok: false; readonly reason: HostRejection };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV6 = /^\[[0-9a-f:.]{2,45}\]$/;
const PORT = /^:\d{1,5}$/;
const MAX_NAME = 253;

/**
 * Reads a `Host` (or `X-Forwarded-Host`) value as the policy matches it: case
 * folded, one trailing dot removed (`example.com.` is `example.com`), the port
 * set apart (not matched). Refuses what is not a host name or an IP literal:
 * empty labels, `_`, `%`, `@`, `/`, spaces, non-ASCII, a port over 65535 or a
 * list (`a, b`), so a value the app could parse another way never decides.
 *
 * @example
 * ```ts
 * normalizeHost("Stripe.PKG.example.:8080"); // { ok: true, name: "stripe.pkg.example", port: ":8080" }
 * normalizeHost("evil.example@stripe.pkg.example"); // { ok: false, reason: "invalid_host" }
 * ```
 */
export function normalizeHost(raw: string): NormalizedHost {
  const invalid: NormalizedHost = { ok: false, reason: "invalid_host" };
  if (raw.length === 0 || raw.length > MAX_NAME + 8) return invalid;
  const lower = raw.toLowerCase();
  let name: string;
  let port = "";
  if (lower.startsWith("[")) {
    const close = lower.indexOf("]");
    if (close === -1) return invalid;
    name = lower.slice(0, close + 1);
    port = lower.slice(close + 1);
    if (!IPV6.test(name)) return invalid;
  } else {
    const colon = lower.indexOf(":");
    name = colon === -1 ? lower : lower.slice(0, colon);
    port = colon === -1 ? "" : lower.slice(colon);
    if (name.endsWith(".")) name = name.slice(0, -1);
    if (name.length === 0 || name.length > MAX_NAME) return invalid;
    for (const label of name.split(".")) if (!LABEL.test(label)) return invalid;
  }
  if (port !== "" && (!PORT.test(port) || Number(port.slice(1)) > 65535)) return invalid;
  return { ok: true, name, port };
}

/** A compiled `host` pattern of a rule. */
export interface HostPattern {
  /** The pattern as written (lower case), for warnings and logs. */
  readonly source: string;
  matches(name: string): boolean;
}

/**
 * Compiles a rule's host pattern: an exact name (`api.example.com`, matched
 * whatever the request's case, trailing dot or port) or `*.` and a suffix
 * (`*.pkg.example`), where `*` is exactly one label: `stripe.pkg.example`
 * matches, `pkg.example` and `a.b.pkg.example` do not.
 *
 * @example
 * ```ts
 * compileHostPattern("*.pkg.example"); // { ok: true, pattern }
 * ```
 */
export function compileHostPattern(
  pattern: string,
): { ok: true; pattern: HostPattern } | { ok: false; message: string } {
  const source = pattern.toLowerCase().replace(/\.$/, "");
  const wildcard = source.startsWith("*.");
  const fixed = wildcard ? source.slice(2) : source;
  const checked = normalizeHost(fixed);
  if (!checked.ok || checked.port !== "" || checked.name !== fixed || fixed.includes("*")) {
    return {
      ok: false,
      message: `host "${pattern}" must be a host name (api.example.com) or *. and a name (*.pkg.example), without a port`,
    };
  }
  if (!wildcard) return { ok: true, pattern: { source, matches: (name) => name === fixed } };
  const suffix = `.${fixed}`;
  return {
    ok: true,
    pattern: {
      source,
      matches: (name) =>
        name.endsWith(suffix) && !name.slice(0, -suffix.length).includes(".") && name.length > suffix.length,
    },
  };
}

/** What a request says about its host, as the entry point read it. */
export interface HostFacts {
  /** `Host` (proxy, WebSocket), or a forward-auth caller's `X-Forwarded-Host`; undefined when absent. */
  readonly host?: string | undefined;
  /** More than one `Host`, or `X-Forwarded-Host` headers that disagree. */
  readonly hostAmbiguous?: boolean | undefined;
  /** In proxy mode, a trusted proxy's `X-Forwarded-Host`: an app behind it may read that instead. */
  readonly forwardedHost?: string | undefined;
  /** Forward-auth and ext_authz: the app gets the request as sent, so only a canonical host is decided on. */
  readonly pathAsSent?: boolean | undefined;
}

/**
 * The host a request is decided on, or why it cannot be: none (HTTP/1.0
 * without `Host`; a forward-auth caller that sent no `X-Forwarded-Host`), two
 * of them, one that is not a host name, a trusted proxy's `X-Forwarded-Host`
 * naming another host than `Host` (the app could read either), or, in
 * forward-auth, a host not written canonically (upper case, trailing dot),
 * which the app receives as sent. Proxy mode rewrites `Host` to the canonical
 * form instead (`canonicalHostHeader`).
 *
 * @example
 * ```ts
 * decideHost({ host: "Stripe.pkg.example:443" }); // { ok: true, name: "stripe.pkg.example", port: ":443" }
 * ```
 */
export function decideHost(facts: HostFacts): NormalizedHost {
  if (facts.hostAmbiguous === true) return { ok: false, reason: "duplicate_host" };
  if (facts.host === undefined) return { ok: false, reason: "missing_host" };
  const host = normalizeHost(facts.host);
  if (!host.ok) return host;
  if (facts.pathAsSent === true && facts.host !== `${host.name}${host.port}`) {
    return { ok: false, reason: "not_canonical_host" };
  }
  if (facts.forwardedHost !== undefined) {
    const forwarded = normalizeHost(facts.forwardedHost);
    if (!forwarded.ok || forwarded.name !== host.name) return { ok: false, reason: "conflicting_host" };
  }
  return host;
}

/** The `Host` value to send upstream: the canonical form of `raw`, or `raw` when it has none. */
export function canonicalHostHeader(raw: string): string {
  const host = normalizeHost(raw);
  return host.ok ? `${host.name}${host.port}` : raw;
}
