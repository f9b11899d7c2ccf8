import fc from "fast-check";
import {
  type AttackCase,
  DETOURS,
  DOT_DOTS,
  DOTS,
  type ExtraHeader,
  GOALS,
  IDENTITY_FIELDS,
  IDENTITY_SPELLINGS,
  type PathOp,
  SEMICOLON_SEGMENTS,
  TOKEN_NAMES,
} from "./attack-case.js";

// fast-check shrinks `constantFrom` towards its first value, integers towards 0 and arrays
// towards empty, so the plain choice comes first everywhere: a shrunk case keeps only the
// tricks the failure needs.

const at = fc.nat({ max: 4 });

const pathOp: fc.Arbitrary<PathOp> = fc.oneof(
  fc.record({
    op: fc.constant("detour" as const),
    at,
    via: fc.constantFrom(...DETOURS),
    dotDot: fc.constantFrom(...DOT_DOTS),
  }),
  fc.record({
    op: fc.constant("climb" as const),
    pad: fc.boolean(),
    depth: fc.integer({ min: 1, max: 3 }),
    dotDot: fc.constantFrom(...DOT_DOTS),
  }),
  fc.record({ op: fc.constant("dot" as const), at, dot: fc.constantFrom(...DOTS) }),
  fc.record({ op: fc.constant("empty" as const), at }),
  fc.record({
    op: fc.constant("semicolon-segment" as const),
    at,
    segment: fc.constantFrom(...SEMICOLON_SEGMENTS),
  }),
  fc.record({ op: fc.constant("param" as const), at, param: fc.constantFrom("x", "jsessionid=1", "") }),
  fc.record({
    op: fc.constant("case" as const),
    at,
    style: fc.constantFrom("upper" as const, "title" as const),
  }),
  fc.record({
    op: fc.constant("encode" as const),
    at,
    char: fc.nat({ max: 20 }),
    hex: fc.constantFrom("lower" as const, "upper" as const),
  }),
  fc.constant({ op: "trailing-slash" as const }),
  fc.constant({ op: "leading-slash" as const }),
);

const extraHeader: fc.Arbitrary<ExtraHeader> = fc.oneof(
  fc.record({
    kind: fc.constant("identity" as const),
    field: fc.constantFrom(...IDENTITY_FIELDS),
    spelling: fc.constantFrom(...IDENTITY_SPELLINGS),
    value: fc.constantFrom("forged" as const, "admin-key" as const),
    twice: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("method-override" as const),
    name: fc.constantFrom("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"),
    value: fc.constantFrom("DELETE", "PUT", "POST", "GET", "delete"),
  }),
  fc.record({
    kind: fc.constant("rewrite" as const),
    name: fc.constantFrom("X-Original-URL", "X-Rewrite-URL"),
    goal: fc.constantFrom(...GOALS),
  }),
  fc.record({
    kind: fc.constant("forward-auth" as const),
    name: fc.constantFrom("X-Original-URI", "X-Forwarded-Uri", "X-Original-Method", "X-Forwarded-Method"),
    goal: fc.constantFrom(...GOALS),
  }),
  fc.constant({ kind: "upgrade" as const }),
);

/** Drawn by index, so a method shrinks towards GET (the first five entries), then along the list. */
const METHODS = [
  ...["GET", "GET", "GET", "GET", "GET"],
  ...["HEAD", "OPTIONS", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "POST", "PUT", "DELETE"],
  ...["PATCH", "TRACE", "PROPFIND", "FOO", "get", "Head"],
];
const method = fc.integer({ min: 0, max: METHODS.length - 1 }).map((index) => METHODS[index] as string);

/** Attacks: a goal route, a method, a credential, and a few path, query and header tricks. */
export function attackCaseArbitrary(): fc.Arbitrary<AttackCase> {
  return fc.record({
    policy: fc.constantFrom("example" as const, "all-private" as const),
    method,
    goal: fc.constantFrom(...GOALS),
    pathOps: fc.array(pathOp, { maxLength: 3 }),
    credential: fc.constantFrom(
      "none" as const,
      "read" as const,
      "admin" as const,
      "garbage" as const,
      "cron" as const,
    ),
    place: fc.constantFrom(
      "bearer" as const,
      "x-api-key" as const,
      "query" as const,
      "bearer-lowercase" as const,
    ),
    tokenName: fc.constantFrom(...TOKEN_NAMES),
    headers: fc.array(extraHeader, { maxLength: 2 }),
    // One case in eight; an integer shrinks to 0, so a shrunk case drops the follow-up it does not need.
    followUp: fc.integer({ min: 0, max: 7 }).map((draw) => draw === 7),
  });
}
