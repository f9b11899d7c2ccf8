// What every app stack in the differential security test reports: which handler it ran, as which
// method, and what identity it was handed. The oracle (../oracle.ts) judges these records, never
// the HTTP responses, so a handler that ran for a request whose answer the client never saw still
// counts.

/** The handlers every test app exposes, named the same way in every stack. */
export type HandlerName =
  | "health"
  | "home"
  | "events"
  | "ws"
  | "admin"
  | "cron"
  | "items.list"
  | "items.create"
  | "items.delete";

/** The app stacks: how each one reads a request differs, which is the point. */
export type StackName = "raw-path" | "express-like" | "tomcat-like" | "wsgi";

/** One handler run, as an app stack records it. */
export interface HandlerRun {
  readonly stack: StackName;
  /** The `x-case-id` header the test put on the request; undefined when it did not arrive. */
  readonly caseId: string | undefined;
  readonly handler: HandlerName;
  /** The method the handler ran as, after any override the stack honours. */
  readonly method: string;
  /** The path the stack routed on, after its own decoding and rewrites (for reports). */
  readonly routedPath: string;
  /**
   * The identity headers as this stack reads them, one entry per header it sees under an
   * identity name: `[name as the stack spells it, value]` (`x-latchkey-scopes` for node:http,
   * `HTTP_X_LATCHKEY_SCOPES` for WSGI, where `x_latchkey_scopes` lands too).
   */
  readonly identityHeaders: ReadonlyArray<readonly [string, string]>;
  /** Values of `token` query parameters, as this stack parses the query (names decoded). */
  readonly queryTokens: readonly string[];
}

/** What a stack's router decided for a request. */
export interface Routed {
  readonly handler: HandlerName;
  readonly method: string;
  readonly path: string;
}

/** An upstream the sidecar forwards to: one server that runs one or more stacks. */
export interface AppUpstream {
  readonly name: string;
  readonly stacks: readonly StackName[];
  readonly port: number;
  /** Handler runs recorded since the previous call. */
  drain(): Promise<HandlerRun[]>;
  close(): Promise<void>;
}

/** The name an identity header has once spelling is set aside: `HTTP_X_LATCHKEY_KEY_ID` → `x-latchkey-key-id`. */
export function identityField(name: string): string {
  return name
    .toLowerCase()
    .replace(/^http_/, "")
    .replaceAll("_", "-");
}
