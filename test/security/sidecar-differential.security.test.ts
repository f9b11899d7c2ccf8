// Issue 8: the differential security test. Generated requests go through the sidecar in proxy
// mode and through nginx in forward-auth mode, into four app stacks that read requests four ways
// (raw path; Express-like; Tomcat-like; WSGI). Each stack records the handler it ran, the method
// it ran it as and the identity it saw; the oracle (oracle.ts) fails a run when a protected
// handler ran without a verified identity with enough scope, when an app saw a forged identity
// header, or when a real key in a `token` query parameter reached an app.
//
// CI: a fixed seed and FUZZ_RUNS (default 2000) cases. `npm run fuzz`: many more cases and a
// random seed unless FUZZ_SEED is set; FUZZ_SEED + FUZZ_PATH replay one reported case, and
// FUZZ_CASE='<fast-check value>' runs one case and prints what each target answered.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attackCaseArbitrary } from "./attack-case.arbitrary.js";
import type { AttackCase } from "./attack-case.js";
import { describeAttack, renderTarget, tricksOf } from "./attack-case.js";
import { type BypassClass, describeClass, explains, signatureOf } from "./bypass-class.js";
import { type DifferentialStack, startDifferentialStack } from "./differential-stack.js";
import { describeViolation } from "./oracle.js";

const FUZZ = process.env.FUZZ === "1";
const RUNS = Number(process.env.FUZZ_RUNS ?? (FUZZ ? 50_000 : 2_000));
const SEED =
  process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : FUZZ ? Date.now() % 2 ** 31 : 8;
const PATH = process.env.FUZZ_PATH;
/** Time for the generated cases, shrinking included; what is left over when it runs out is skipped. */
const BUDGET_MS = Number(process.env.FUZZ_BUDGET_S ?? (FUZZ ? 3_600 : 35)) * 1000;
/** A run stops looking after this many distinct classes: past that, fix first. */
const MAX_CLASSES = Number(process.env.FUZZ_MAX_CLASSES ?? 16);

let stack: DifferentialStack;

beforeAll(async () => {
  const started = performance.now();
  stack = await startDifferentialStack({ exchangeTimeoutMs: 2_000 });
  console.log(`differential: stack up in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

describe("the sidecar in front of four app stacks, proxy and forward-auth", () => {
  it("an Upgrade answered 200 leaves no raw tunnel: a second request on the socket is checked like any other", async () => {
    const found: string[] = [];
    for (const target of stack.targets.filter((candidate) => candidate.policy === "example")) {
      const { exchange, violations } = await stack.exchange(
        target,
        (context, caseId) => [
          {
            bytes: Buffer.from(
              `GET /healthz HTTP/1.1\r\nHost: ${context.host}\r\nx-case-id: ${caseId}\r\nConnection: Upgrade\r\n` +
                "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            ),
            head: false,
          },
          {
            bytes: Buffer.from(
              `POST /admin/delete-everything HTTP/1.1\r\nHost: ${context.host}\r\nx-case-id: ${caseId}.f\r\n` +
                "X-Latchkey-Scopes: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
            head: false,
          },
        ],
        { credential: "none", place: "bearer" },
      );
      // The first request is public: the app answers it, so the test is not vacuous.
      expect(exchange.answers[0]?.status, target.label).toBe(200);
      found.push(...violations.map(describeViolation));
    }
    expect(found).toEqual([]);
  });

  it(
    "no generated request runs a protected handler without its identity, shows a forged identity or leaks a key",
    async () => {
      if (process.env.FUZZ_CASE !== undefined) {
        // One case given as its fast-check value: what every target answered and what the apps did.
        const attack = JSON.parse(process.env.FUZZ_CASE) as AttackCase;
        const { violations, answers } = await stack.attack(attack);
        console.log(describeAttack(attack, stack.symbolic));
        for (const { target, exchange } of answers) {
          console.log(
            `${target}: ${exchange.ended}, ${exchange.answers.map((answer) => answer.status).join(" then ")}`,
          );
        }
        expect(violations.map(describeViolation)).toEqual([]);
        return;
      }
      const classes: BypassClass[] = [];
      let failure: unknown;
      let executed = 0;
      let timeouts = 0;
      const property = fc.asyncProperty(attackCaseArbitrary(), async (attack: AttackCase) => {
        executed++;
        try {
          const { violations, answers } = await stack.attack(attack);
          timeouts += answers.filter(({ exchange }) => exchange.ended === "timeout").length;
          const passed = violations.every((violation) =>
            classes.some((known) => explains(known, attack, violation)),
          );
          if (process.env.FUZZ_DEBUG === "1")
            console.log(
              JSON.stringify({
                attack,
                tricks: tricksOf(attack),
                target: renderTarget(attack, stack.symbolic),
                violations,
                ended: answers.map(
                  ({ target, exchange }) =>
                    `${target} ${exchange.ended} ${exchange.answers.map((answer) => answer.status).join("/")}`,
                ),
              }),
            );
          return passed;
        } catch (error) {
          failure ??= error;
          throw error;
        }
      });
      const started = performance.now();
      let runs = 0;
      let interrupted = false;
      let unreproduced: AttackCase | undefined;
      while (classes.length < MAX_CLASSES) {
        const remaining = BUDGET_MS - (performance.now() - started);
        if (remaining <= 0) break;
        const details = await fc.check(property, {
          // A new seed per round: the next round looks at new cases instead of replaying passed ones.
          seed: SEED + classes.length,
          numRuns: RUNS,
          ...(PATH === undefined ? {} : { path: PATH, endOnFailure: true }),
          interruptAfterTimeLimit: remaining,
          markInterruptAsFailure: false,
        });
        runs = details.numRuns;
        interrupted = details.interrupted;
        if (failure !== undefined) throw failure;
        if (!details.failed || details.counterexample === null) break;
        const [attack] = details.counterexample;
        // Once more, to show what the shrunk attack does.
        const { violations } = await stack.attack(attack);
        const fresh = violations.filter(
          (violation) => !classes.some((known) => explains(known, attack, violation)),
        );
        if (fresh.length === 0) {
          unreproduced = attack;
          break;
        }
        classes.push({
          tricks: tricksOf(attack),
          signatures: new Set(fresh.map(signatureOf)),
          attack,
          violations: fresh,
          seed: details.seed,
          path: details.counterexamplePath,
        });
        console.log(
          `bypass class ${classes.length}: ${[...new Set(fresh.map(signatureOf))].join("; ")} — ${tricksOf(attack).join(" + ") || "plain"}`,
        );
        if (PATH !== undefined) break;
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      console.log(
        `differential: seed ${SEED}, ${runs} cases in the last round${interrupted ? " (cut short by FUZZ_BUDGET_S)" : ""}, ${executed} in all (shrinking included), ${timeouts} exchanges timed out, ${seconds} s, ${classes.length} bypass classes`,
      );
      if (unreproduced !== undefined) {
        throw new Error(`a failing case did not fail again (flaky stack?): ${JSON.stringify(unreproduced)}`);
      }
      if (classes.length > 0) {
        const report = classes
          .map((found, index) => describeClass(found, index, stack.symbolic))
          .join("\n\n");
        throw new Error(
          `${classes.length} bypass class(es) through the sidecar (seed ${SEED}; each shrunk by fast-check):\n\n${report}\n`,
        );
      }
    },
    BUDGET_MS + 60_000,
  );
});
