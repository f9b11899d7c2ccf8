// One generated request (and, sometimes, a second one on the same connection), described by the
// tricks it uses rather than by its bytes, so that fast-check shrinks it trick by trick and a
// failure reads as "this trick, on this route". Rendering turns it into bytes; with symbolic
// credentials it renders the same request for a report without writing any key.
import type { RawRequest } from "./raw-exchange.js";

/** The shipped example policy, or the same rules under the `all-private` preset. */
export type PolicyVariant = "example" | "all-private";
/** Which credential the request carries: a real key with `read` or `admin`, an unknown key, the cron secret. */
export type CredentialName = "none" | "read" | "admin" | "garbage" | "cron";
export type CredentialPlace = "bearer" | "bearer-lowercase" | "x-api-key" | "query";
/** The handler a request aims at, before any trick is applied to its path. */
export type Goal =
  | "healthz"
  | "admin-users"
  | "events"
  | "items"
  | "admin"
  | "admin-delete"
  | "cron"
  | "ws"
  | "home";

export const GOALS: readonly Goal[] = [
  "healthz",
  "admin-users",
  "events",
  "items",
  "admin",
  "admin-delete",
  "cron",
  "ws",
  "home",
];

const GOAL_SEGMENTS: Readonly<Record<Goal, readonly string[]>> = {
  healthz: ["healthz"],
  "admin-users": ["admin", "users"],
  events: ["events"],
  items: ["items"],
  admin: ["admin"],
  "admin-delete": ["admin", "delete-everything"],
  cron: ["cron", "daily"],
  ws: ["ws"],
  home: [],
};

export const DOT_DOTS = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "..;", "..;x", "%2e%2e;"] as const;
export const DOTS = [".", "%2e", ".;"] as const;
export const SEMICOLON_SEGMENTS = [";", "%3B", "%3b", ";x=1"] as const;
export const DETOURS = ["x", "healthz", "admin", "events"] as const;

/** A change to the path; `at` is taken modulo the number of places to insert at. */
export type PathOp =
  /** `via/..` inserted: resolves back to where it was. */
  | { readonly op: "detour"; readonly at: number; readonly via: string; readonly dotDot: string }
  /** `[x/]..[/..]` appended: climbs out of the goal to a parent. */
  | { readonly op: "climb"; readonly pad: boolean; readonly depth: number; readonly dotDot: string }
  | { readonly op: "dot"; readonly at: number; readonly dot: string }
  /** An empty segment: `//`. */
  | { readonly op: "empty"; readonly at: number }
  /** A segment that is only a path parameter: `/;/`, `/%3B/`. */
  | { readonly op: "semicolon-segment"; readonly at: number; readonly segment: string }
  /** A parameter on a segment: `admin;x`. */
  | { readonly op: "param"; readonly at: number; readonly param: string }
  | { readonly op: "case"; readonly at: number; readonly style: "upper" | "title" }
  /** One character of a segment percent-encoded. */
  | { readonly op: "encode"; readonly at: number; readonly char: number; readonly hex: "lower" | "upper" }
  | { readonly op: "trailing-slash" }
  | { readonly op: "leading-slash" };

export const TOKEN_NAMES = ["token", "%74oken", "tok%65n", "%74%6F%6B%65%6E", "TOKEN"] as const;
export const IDENTITY_FIELDS = ["key-id", "team-id", "scopes", "key-name", "environment", "owner"] as const;
export const IDENTITY_SPELLINGS = [
  "X-Latchkey-",
  "x-latchkey-",
  "X-LATCHKEY-",
  "x_latchkey_",
  "X_LATCHKEY_",
  "X-Latchkey_",
] as const;

/** A header added to the request. */
export type ExtraHeader =
  | { readonly kind: "method-override"; readonly name: string; readonly value: string }
  | { readonly kind: "rewrite"; readonly name: string; readonly goal: Goal }
  /** A client-sent identity header: forged values, or the admin key's real ones. */
  | {
      readonly kind: "identity";
      readonly field: (typeof IDENTITY_FIELDS)[number];
      readonly spelling: (typeof IDENTITY_SPELLINGS)[number];
      readonly value: "forged" | "admin-key";
      readonly twice: boolean;
    }
  /** The headers forward-auth reads the original request from, sent by the client. */
  | { readonly kind: "forward-auth"; readonly name: string; readonly goal: Goal }
  /** `Connection: Upgrade` + `Upgrade: websocket`. */
  | { readonly kind: "upgrade" };

/** One generated attack. */
export interface AttackCase {
  readonly policy: PolicyVariant;
  readonly method: string;
  readonly goal: Goal;
  readonly pathOps: readonly PathOp[];
  readonly credential: CredentialName;
  readonly place: CredentialPlace;
  /** How the `token` parameter's name is spelled when the credential goes in the query. */
  readonly tokenName: string;
  readonly headers: readonly ExtraHeader[];
  /**
   * After the answer, a second request on the same connection: `POST /admin/delete-everything`
   * with no credential and the admin key's identity headers, as a client would forge them.
   */
  readonly followUp: boolean;
}

/** What rendering needs: the credentials (real, or placeholders for reports) and the admin identity. */
export interface RenderContext {
  readonly credentials: Readonly<Record<Exclude<CredentialName, "none">, string>>;
  /** The admin key's identity header values, by field (`key-id`, …). */
  readonly adminIdentity: Readonly<Record<(typeof IDENTITY_FIELDS)[number], string>>;
  readonly host: string;
}

/** The credentials as a report shows them. */
export const SYMBOLIC_CREDENTIALS: RenderContext["credentials"] = {
  read: "<read-key>",
  admin: "<admin-key>",
  garbage: "<unknown-key>",
  cron: "<cron-secret>",
};

const FORGED: Readonly<Record<(typeof IDENTITY_FIELDS)[number], string>> = {
  "key-id": "key_forged",
  "team-id": "team_forged",
  scopes: "admin",
  "key-name": "forged",
  environment: "prod",
  owner: "agent-forged",
};

/** The request target (path and query) of an attack. */
export function renderTarget(attack: AttackCase, context: RenderContext): string {
  let query = "";
  if (attack.credential !== "none" && attack.place === "query") {
    query = `?${attack.tokenName}=${context.credentials[attack.credential]}`;
  }
  return `${renderPath(attack.goal, attack.pathOps)}${query}`;
}

/** The path of a goal with the path tricks applied, in order. */
export function renderPath(goal: Goal, ops: readonly PathOp[]): string {
  let segments = [...GOAL_SEGMENTS[goal]];
  let leading = false;
  for (const op of ops) {
    const insertAt = (at: number) => at % (segments.length + 1);
    const existing = (at: number) => (segments.length === 0 ? -1 : at % segments.length);
    switch (op.op) {
      case "detour":
        segments.splice(insertAt(op.at), 0, op.via, op.dotDot);
        break;
      case "climb":
        segments.push(...(op.pad ? ["x"] : []), ...Array.from({ length: op.depth }, () => op.dotDot));
        break;
      case "dot":
        segments.splice(insertAt(op.at), 0, op.dot);
        break;
      case "empty":
        segments.splice(insertAt(op.at), 0, "");
        break;
      case "semicolon-segment":
        segments.splice(insertAt(op.at), 0, op.segment);
        break;
      case "param": {
        const index = existing(op.at);
        if (index !== -1) segments[index] = `${segments[index]};${op.param}`;
        break;
      }
      case "case": {
        const index = existing(op.at);
        const segment = segments[index];
        if (segment === undefined) break;
        segments[index] =
          op.style === "upper"
            ? segment.toUpperCase()
            : `${segment.slice(0, 1).toUpperCase()}${segment.slice(1)}`;
        break;
      }
      case "encode": {
        const index = existing(op.at);
        const segment = segments[index];
        if (segment === undefined || segment === "") break;
        // Only a character that is not already part of an escape.
        const plain = [...segment].flatMap((char, i) =>
          char !== "%" && !/%[0-9A-Fa-f]?$/.test(segment.slice(Math.max(0, i - 2), i)) ? [i] : [],
        );
        const at = plain[op.char % Math.max(1, plain.length)];
        if (at === undefined) break;
        const hex = (segment.charCodeAt(at) as number).toString(16).padStart(2, "0");
        segments[index] =
          `${segment.slice(0, at)}%${op.hex === "upper" ? hex.toUpperCase() : hex}${segment.slice(at + 1)}`;
        break;
      }
      case "trailing-slash":
        if (segments.at(-1) !== "") segments = [...segments, ""];
        break;
      case "leading-slash":
        leading = true;
        break;
    }
  }
  return `${leading ? "/" : ""}/${segments.join("/")}`;
}

const NO_BODY_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/**
 * The bytes of an attack: the request, and the follow-up when it has one. `caseId` goes in
 * `x-case-id` (the follow-up's with `.f` appended), so the apps' records can be matched to it.
 */
export function renderAttack(attack: AttackCase, context: RenderContext, caseId: string): RawRequest[] {
  const lines = [`${attack.method} ${renderTarget(attack, context)} HTTP/1.1`, `Host: ${context.host}`];
  lines.push(`x-case-id: ${caseId}`);
  if (attack.credential !== "none") {
    const value = context.credentials[attack.credential];
    if (attack.place === "bearer") lines.push(`Authorization: Bearer ${value}`);
    else if (attack.place === "bearer-lowercase") lines.push(`authorization: bearer ${value}`);
    else if (attack.place === "x-api-key") lines.push(`X-API-Key: ${value}`);
  }
  let upgrade = false;
  for (const header of attack.headers) {
    switch (header.kind) {
      case "method-override":
        lines.push(`${header.name}: ${header.value}`);
        break;
      case "rewrite":
      case "forward-auth":
        lines.push(`${header.name}: ${header.name.endsWith("Method") ? "GET" : renderPath(header.goal, [])}`);
        break;
      case "identity": {
        const value = header.value === "forged" ? FORGED[header.field] : context.adminIdentity[header.field];
        const name = `${header.spelling}${header.spelling.includes("_") && !header.spelling.includes("-") ? header.field.replaceAll("-", "_") : header.field}`;
        const spelled = header.spelling === header.spelling.toUpperCase() ? name.toUpperCase() : name;
        lines.push(`${spelled}: ${value}`);
        if (header.twice) lines.push(`${spelled}: ${value}`);
        break;
      }
      case "upgrade":
        upgrade = true;
        break;
    }
  }
  if (!NO_BODY_METHODS.has(attack.method.toUpperCase())) lines.push("Content-Length: 0");
  if (upgrade) {
    lines.push(
      "Connection: Upgrade",
      "Upgrade: websocket",
      "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    );
  } else if (!attack.followUp) lines.push("Connection: close");
  const requests: RawRequest[] = [
    { bytes: Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), head: attack.method === "HEAD" },
  ];
  if (attack.followUp) requests.push(followUpRequest(context, `${caseId}.f`));
  return requests;
}

/**
 * The second request on a connection: an admin action with no credential and the admin key's
 * identity headers written by the client.
 */
export function followUpRequest(context: RenderContext, caseId: string): RawRequest {
  const { adminIdentity: id } = context;
  const text = [
    "POST /admin/delete-everything HTTP/1.1",
    `Host: ${context.host}`,
    `x-case-id: ${caseId}`,
    `X-Latchkey-Key-Id: ${id["key-id"]}`,
    `X-Latchkey-Team-Id: ${id["team-id"]}`,
    `X-Latchkey-Scopes: ${id.scopes}`,
    `X-Latchkey-Key-Name: ${id["key-name"]}`,
    `X-Latchkey-Environment: ${id.environment}`,
    `X-Latchkey-Owner: ${id.owner}`,
    "Content-Length: 0",
    "Connection: close",
  ].join("\r\n");
  return { bytes: Buffer.from(`${text}\r\n\r\n`, "latin1"), head: false };
}

/** The request as a report prints it: credentials as placeholders, `\r\n` as new lines. */
export function describeAttack(attack: AttackCase, context: RenderContext): string {
  const [request, followUp] = renderAttack(attack, context, "…");
  const text = (raw: RawRequest | undefined) =>
    raw === undefined
      ? ""
      : raw.bytes
          .toString("latin1")
          .trimEnd()
          .split("\r\n")
          .filter((line) => !/^(host|x-case-id|connection: close$)/i.test(line))
          .join("\n    ");
  const then = followUp === undefined ? "" : `\n  then, on the same connection:\n    ${text(followUp)}`;
  return `    ${text(request)}${then}\n  (policy: ${attack.policy === "example" ? "examples/policy.yaml" : "examples/policy.yaml with preset all-private"})`;
}

/**
 * The tricks an attack uses, by family (`path: .. segment`, `header: identity (underscore)`):
 * what a bypass class is named by, and what decides whether a known class explains a new
 * failure. Path tricks are read off the rendered path rather than the operations that built it,
 * so `/;x/admin` (an empty segment given a parameter) and `/;/admin` are the same trick.
 */
export function tricksOf(attack: AttackCase): string[] {
  const tricks = new Set<string>();
  if (attack.method !== "GET") tricks.add(`method ${attack.method}`);
  for (const trick of pathTricks(renderPath(attack.goal, attack.pathOps))) tricks.add(trick);
  if (attack.credential !== "none" && attack.place === "query") {
    tricks.add(attack.tokenName === "token" ? "query token" : "query token (encoded name)");
  }
  for (const header of attack.headers) {
    if (header.kind === "identity") {
      tricks.add(`header: identity (${header.spelling.includes("_") ? "underscore" : "dash"})`);
    } else tricks.add(`header: ${header.kind}`);
  }
  if (attack.followUp) tricks.add("follow-up request");
  return [...tricks].sort();
}

function pathTricks(path: string): string[] {
  const tricks: string[] = [];
  const segments = path.slice(1).split("/");
  segments.forEach((segment, index) => {
    let decoded = segment;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      // left as it is
    }
    const semicolon = decoded.indexOf(";");
    const bare = semicolon === -1 ? decoded : decoded.slice(0, semicolon);
    if (bare === "..") tricks.push("path: .. segment");
    else if (bare === ".") tricks.push("path: . segment");
    else if (segment === "") {
      if (index < segments.length - 1) tricks.push("path: empty segment");
      else if (index > 0) tricks.push("path: trailing slash");
    } else if (bare === "") tricks.push("path: ;-only segment");
    else {
      if (semicolon !== -1) tricks.push("path: ;param");
      if (segment.includes("%")) tricks.push("path: percent-encoded character");
      if (segment !== segment.toLowerCase()) tricks.push("path: upper case");
    }
  });
  return tricks;
}
