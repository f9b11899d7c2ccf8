// npm run chaos                 (3 rounds of every fault)
// npm run chaos -- --short      (1 round: the CI-sized run)
// npm run chaos -- --rounds 5 --hold-ms 8000 --rate 200
// npm run chaos -- --only kill-token-service,restart-postgres --verbose
//
// The chaos bench (not part of `npm test`). It starts two token-service replicas on real
// PostgreSQL, a three-node NATS JetStream cluster (stream replicas 3) and four sidecars, runs a
// steady load of valid keys, revoked keys and fresh revocations through the sidecars, and
// meanwhile, one at a time: SIGKILLs and restarts a NATS node, the key-event stream's leader, a
// token-service replica, PostgreSQL (an immediate stop: a crash) and a sidecar; and partitions a
// sidecar, then both token-service replicas, from NATS (a relay that stops carrying bytes without
// closing anything). After each fault heals, every process must work again (chaos-health.ts).
// At the end, once everything is healed and the bound has passed, every revoked key is tried on
// every sidecar: one accepted is a lost revocation.
//
// Output: the settings on the first line, one line per fault, then
//   chaos faults=… requests=… wrong_accepts=0 lost_revocations=0 max_staleness_ms=… fail_closed=…
// Exit code 1 when a wrong accept, a lost revocation, a wrong refusal or an unrecovered fault occurred.
import { CHAOS_FAULTS } from "./chaos-faults.js";
import { exitedProcessOutput, waitForRecovery } from "./chaos-health.js";
import { createChaosLedger, totalsSince } from "./chaos-ledger.js";
import { startChaosLoad } from "./chaos-load.js";
import { describeSettings, parseChaosSettings } from "./chaos-settings.js";
import { type ChaosWarning, startChaosStack } from "./chaos-stack.js";

const settings = parseChaosSettings(process.argv.slice(2));
const faultList = CHAOS_FAULTS.filter((fault) => settings.only?.includes(fault.name) ?? true);
const unknown = settings.only?.filter((name) => !CHAOS_FAULTS.some((fault) => fault.name === name)) ?? [];
if (unknown.length > 0) {
  throw new Error(
    `--only: no fault named ${unknown.join(", ")}; the faults: ${CHAOS_FAULTS.map((f) => f.name).join(", ")}`,
  );
}
console.log(describeSettings(settings));
const runStarted = performance.now();
const stack = await startChaosStack(settings);
const ledger = createChaosLedger(settings.boundMs);
let failed = false;
let faults = 0;
try {
  const load = await startChaosLoad(stack, settings, ledger);
  console.log(`chaos stack ready in ${Math.round(performance.now() - runStarted)} ms; load running`);
  // Let every cache fill and the first revocations go through before anything breaks.
  await new Promise((resolve) => setTimeout(resolve, 3_000));

  for (let round = 0; round < settings.rounds; round++) {
    for (const fault of faultList) {
      const before = ledger.totals();
      ledger.openWindow();
      const started = performance.now();
      const target = await fault.run(stack, round, () => new Promise((r) => setTimeout(r, settings.holdMs)));
      const recovery = await waitForRecovery(stack, load, settings);
      const during = totalsSince(before, ledger.totals());
      faults += 1;
      if (settings.verbose) console.log(describeWarnings(stack.warnings.filter((w) => w.at >= started)));
      if (!recovery.ok) console.error(exitedProcessOutput(stack));
      if (!recovery.ok || during.wrongAccepts > 0 || during.wrongRefusals > 0) failed = true;
      console.log(
        `fault round=${round + 1} kind=${fault.name} target=${target} ` +
          `fault_ms=${Math.round(performance.now() - started - recovery.ms)} recovered_ms=${recovery.ms} ` +
          `recovered=${recovery.ok ? "yes" : `no(${recovery.failing.join(",")})`} ` +
          `last_to_recover=${recovery.last.join(",").replaceAll(" ", "_") || "-"} requests=${during.requests} ` +
          `wrong_accepts=${during.wrongAccepts} max_staleness_ms=${Math.round(during.maxStalenessMs)} ` +
          `fail_closed=${during.failClosed} unreachable=${during.unreachable} wrong_refusals=${during.wrongRefusals}`,
      );
    }
  }

  await load.stop();
  // Every fault is healed; after the bound, no sidecar may accept any revoked key.
  await new Promise((resolve) => setTimeout(resolve, settings.boundMs));
  let lost = 0;
  for (const key of load.revoked) {
    for (const sidecar of stack.sidecars) {
      if (sidecar.process === undefined) continue;
      if ((await load.send(sidecar.process.url, key)) === 200) lost += 1;
    }
  }
  const totals = ledger.totals();
  if (lost > 0 || totals.wrongAccepts > 0 || totals.wrongRefusals > 0) failed = true;
  for (const incident of ledger.incidents) console.log(incident);
  console.log(
    `chaos faults=${faults} requests=${totals.requests} wrong_accepts=${totals.wrongAccepts} ` +
      `lost_revocations=${lost} max_staleness_ms=${Math.round(totals.maxStalenessMs)} ` +
      `fail_closed=${totals.failClosed} unreachable=${totals.unreachable} wrong_refusals=${totals.wrongRefusals} ` +
      `revocations=${load.revoked.length} bound_ms=${settings.boundMs} ` +
      `wall_s=${Math.round((performance.now() - runStarted) / 1000)}`,
  );
} catch (error) {
  failed = true;
  console.error(error);
} finally {
  await stack.stop();
}
process.exit(failed ? 1 : 0);

/** `  ts-a ×3 outbox publish failed; will retry`, one line per process and message. */
function describeWarnings(warnings: readonly ChaosWarning[]): string {
  const counts = new Map<string, number>();
  for (const { source, message } of warnings) {
    const key = `${source} ${message}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return (
    [...counts].map(([key, count]) => `  ${key.replace(" ", ` ×${count} `)}`).join("\n") || "  (no warnings)"
  );
}
