import { createNatsKeyEventBus } from "@latchkey/events";
import { createVerifier } from "@latchkey/verifier";

// One verifier process of bench:revocation. It caches every token it is given
// as VALID, then reports, on the system-wide monotonic clock, the moment each
// key stops being accepted (evicted by a key event). Asked afterwards, it
// verifies the key and reports the answer, which must be REVOKED; that check
// runs after every verifier has reported, so its RPCs do not slow the others.

type Command =
  | { kind: "load"; tokens: Array<{ keyId: string; token: string }> }
  | { kind: "check"; keyId: string }
  | { kind: "stop" };

const bus = createNatsKeyEventBus({ servers: process.env.NATS_URL ?? "", name: "bench-verifier" });
const verifier = createVerifier({
  tokenService: process.env.TOKEN_SERVICE_URL ?? "",
  events: bus,
  prefix: process.env.LATCHKEY_KEY_PREFIX ?? "lk",
  maxEntries: 100_000,
  label: `bench-${process.pid}`,
});
const tokens = new Map<string, string>();
const reported = new Set<string>();

verifier.onInvalidate(({ keyId }) => {
  const evictedAt = process.hrtime.bigint();
  const token = tokens.get(keyId);
  if (token === undefined || reported.has(keyId)) return;
  reported.add(keyId);
  process.send?.({ kind: "evicted", keyId, evictedAt: evictedAt.toString() });
});

process.on("message", async (command: Command) => {
  if (command.kind === "stop") {
    await verifier.close();
    await bus.close();
    process.exit(0);
  }
  if (command.kind === "check") {
    const outcome = await verifier.verify(tokens.get(command.keyId) ?? "");
    process.send?.({ kind: "checked", keyId: command.keyId, code: outcome.code });
    return;
  }
  for (const { keyId, token } of command.tokens) {
    tokens.set(keyId, token);
    const outcome = await verifier.verify(token);
    if (!outcome.ok) throw new Error(`setup: ${keyId} is ${outcome.code}`);
  }
  process.send?.({ kind: "loaded", cached: command.tokens.length });
});

await verifier.ready();
process.send?.({ kind: "ready", id: verifier.id });
