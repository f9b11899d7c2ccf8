import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { startNats } from "../harness/nats.js";
import { startPostgres } from "../harness/postgres.js";
import { adminClients } from "./admin-client.js";
import { spawnBenchTokenService } from "./bench-token-service.js";

// npm run bench:revocation -- --verifiers 20 --keys 200
// Starts the token-service on real PostgreSQL and NATS and N verifier
// processes that each hold every key cached as VALID, revokes the keys one by
// one, and records per verifier the time from Revoke's OK to the key being
// rejected (evicted from its cache, so the next request is refused), on the
// system-wide monotonic clock. Negative times (the event beat the RPC reply)
// count as 0.

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive whole number`);
  return value;
}

const verifierCount = flag("verifiers", 20);
const keyCount = flag("keys", 200);
const missAfterMs = flag("miss-after-ms", 5_000);
const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0);

interface Rejection {
  keyId: string;
  evictedAt: bigint;
  code?: string;
}

const postgres = await startPostgres();
const nats = await startNats();
const rootKey = randomBytes(32).toString("base64url");
const stops: Array<() => Promise<void>> = [() => postgres.stop(), () => nats.dispose()];
const children: ChildProcess[] = [];
try {
  const { process: service, grpcUrl } = await spawnBenchTokenService({
    databaseUrl: postgres.url,
    natsUrl: nats.url,
    rootKey,
    ready: /key event stream ready/,
  });
  stops.unshift(() => service.stop());
  const { teams, tokens } = adminClients(grpcUrl, rootKey);
  const { team } = await teams.createTeam({ name: "bench-revocation" });
  const keys: Array<{ keyId: string; token: string }> = [];
  for (let i = 0; i < keyCount; i++) {
    const issued = await tokens.issue({ teamId: team?.id ?? "", name: `k${i}`, scopes: ["read"] });
    keys.push({ keyId: issued.key?.id ?? "", token: issued.token });
  }

  const rejections = new Map<string, Rejection[]>(keys.map((k) => [k.keyId, []]));
  const waiting = new Map<string, () => void>();
  const checks = new Map<string, () => void>();
  const verifierEntry = fileURLToPath(new URL("./revocation-verifier.ts", import.meta.url));
  await Promise.all(
    Array.from({ length: verifierCount }, async () => {
      const child = fork(verifierEntry, [], {
        execArgv: ["--conditions=@latchkey/source", "--import", "tsx"],
        env: { ...process.env, NATS_URL: nats.url, TOKEN_SERVICE_URL: grpcUrl },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      children.push(child);
      const mine = new Map<string, Rejection>();
      child.on("message", (message: { kind: string } & Record<string, string>) => {
        const keyId = message.keyId ?? "";
        if (message.kind === "evicted") {
          const list = rejections.get(keyId);
          const entry: Rejection = { keyId, evictedAt: BigInt(message.evictedAt ?? "0") };
          mine.set(keyId, entry);
          list?.push(entry);
          if (list && list.length === verifierCount) waiting.get(keyId)?.();
        } else if (message.kind === "checked") {
          const entry = mine.get(keyId) ?? { keyId, evictedAt: -1n };
          entry.code = message.code ?? "";
          checks.get(keyId)?.();
        }
      });
      await new Promise<void>((resolve, reject) => {
        child.once("exit", (code) => reject(new Error(`verifier exited with ${code}`)));
        const onMessage = (message: { kind: string }) => {
          if (message.kind === "ready") child.send({ kind: "load", tokens: keys });
          if (message.kind === "loaded") {
            child.off("message", onMessage);
            resolve();
          }
        };
        child.on("message", onMessage);
      });
    }),
  );

  const revokedOkAt = new Map<string, bigint>();
  for (const { keyId } of keys) {
    const all = new Promise<void>((resolve) => {
      waiting.set(keyId, resolve);
      setTimeout(resolve, missAfterMs).unref();
    });
    await tokens.revoke({ keyId });
    revokedOkAt.set(keyId, process.hrtime.bigint());
    await all;
    waiting.delete(keyId);
  }
  // Every verifier now verifies every key: the answer must be REVOKED.
  for (const { keyId } of keys) {
    let pending = children.length;
    const done = new Promise<void>((resolve) => {
      checks.set(keyId, () => {
        pending -= 1;
        if (pending === 0) resolve();
      });
      setTimeout(resolve, missAfterMs).unref();
    });
    for (const child of children) child.send({ kind: "check", keyId });
    await done;
    checks.delete(keyId);
  }

  const evictMs: number[] = [];
  let missed = 0;
  let wrongCode = 0;
  let early = 0;
  for (const { keyId } of keys) {
    const okAt = revokedOkAt.get(keyId) ?? 0n;
    const list = rejections.get(keyId) ?? [];
    missed += verifierCount - list.length;
    for (const r of list) {
      const ms = Number(r.evictedAt - okAt) / 1e6;
      if (ms < 0) early++;
      evictMs.push(Math.max(0, ms));
      if (r.code !== "REVOKED") wrongCode++;
    }
  }
  evictMs.sort((a, b) => a - b);
  const fmt = (n: number) => n.toFixed(2);
  console.log(
    `\nRevocation propagation, ${verifierCount} verifier processes x ${keyCount} keys (${evictMs.length} samples)`,
  );
  console.log("| measure | p50 ms | p99 ms | max ms |");
  console.log("|---|---|---|---|");
  console.log(
    `| Revoke OK -> key rejected by the verifier | ${fmt(percentile(evictMs, 50))} | ${fmt(percentile(evictMs, 99))} | ${fmt(evictMs.at(-1) ?? Number.NaN)} |`,
  );
  console.log(`${early} of ${evictMs.length} evictions came before Revoke's reply (counted as 0 ms)`);
  if (wrongCode > 0) console.log(`error: ${wrongCode} verifications after eviction did not answer REVOKED`);
  console.log(
    `revocation verifiers=${verifierCount} keys=${keyCount} p50_ms=${fmt(percentile(evictMs, 50))} ` +
      `p99_ms=${fmt(percentile(evictMs, 99))} max_ms=${fmt(evictMs.at(-1) ?? Number.NaN)} missed=${missed}`,
  );
  process.exitCode = missed > 0 || wrongCode > 0 ? 1 : 0;
} finally {
  for (const child of children) if (child.connected) child.send({ kind: "stop" });
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const child of children) child.kill("SIGKILL");
  for (const stop of stops) await stop().catch(() => {});
}
