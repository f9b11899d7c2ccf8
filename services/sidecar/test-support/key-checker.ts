import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { createMemoryKeyEventBus, type KeyEventBus } from "@latchkey/events";
import {
  type Key,
  KeyEventSchema,
  KeyEventType,
  KeySchema,
  TokenService,
  type VerifyResponse,
  VerifyResponseSchema,
  VerifyResult,
} from "@latchkey/proto";
import { generateToken, hashToken, missingScopes, randomBase62 } from "@latchkey/token";
import { createVerifier, type Verifier } from "@latchkey/verifier";
import { answerOutboxCurrency } from "../../../packages/verifier/test-support/drained-outbox.js";

/**
 * A real `@latchkey/verifier` (cache, single-flight, key events) whose Verify
 * RPC is answered in memory over `createRouterTransport`, and an in-process
 * event bus on which the fixture publishes key events the way the
 * token-service's outbox would. Cross-process tests with the real
 * token-service live under `test/`.
 */
export interface KeyCheckerFixture {
  readonly verifier: Verifier;
  readonly bus: KeyEventBus;
  /** Verify RPCs answered so far. */
  readonly calls: number;
  /** Issues a key. */
  issue(options?: {
    scopes?: string[];
    name?: string;
    teamId?: string;
    environment?: string;
    owner?: string;
  }): {
    token: string;
    key: Key;
  };
  /** Revokes a key and publishes the event. */
  revoke(key: Key): Promise<void>;
  /** Revokes a key without publishing (a revocation the event feed missed). */
  revokeSilently(key: Key): void;
  /** While set, Verify fails as if the token-service were down. */
  down: boolean;
  /** While set, Verify answers RATE_LIMITED for every key. */
  rateLimited: boolean;
  close(): Promise<void>;
}

/** Creates a {@link KeyCheckerFixture}; `maxStaleMs` is the verifier's bounded staleness. */
export async function createKeyCheckerFixture(
  options: { maxStaleMs?: number } = {},
): Promise<KeyCheckerFixture> {
  const bus = createMemoryKeyEventBus();
  const keys = new Map<string, { key: Key; revoked: boolean }>();
  let calls = 0;
  let eventId = 0n;
  const answer = (token: string, required: readonly string[]): VerifyResponse => {
    const result = (code: VerifyResult, key?: Key, missing: string[] = []) =>
      create(VerifyResponseSchema, { result: code, key, missingScopes: missing });
    const stored = keys.get(hashToken(token).toString("hex"));
    if (stored === undefined) return result(VerifyResult.NOT_FOUND);
    if (stored.revoked) return result(VerifyResult.REVOKED);
    if (fixture.rateLimited) return result(VerifyResult.RATE_LIMITED);
    const missing = missingScopes(stored.key.scopes, required);
    if (missing.length > 0) return result(VerifyResult.INSUFFICIENT_SCOPE, stored.key, missing);
    return result(VerifyResult.VALID, stored.key);
  };
  const transport = createRouterTransport(({ service }) => {
    service(TokenService, {
      async verify(request) {
        calls++;
        if (fixture.down) throw new ConnectError("token-service is down", Code.Unavailable);
        return answer(request.token, request.requiredScopes);
      },
    });
  });
  // The fixture publishes every change itself, at once: its outbox is always drained.
  answerOutboxCurrency(bus);
  const verifier = createVerifier({ transport, events: bus, maxStaleMs: options.maxStaleMs ?? 60_000 });
  await verifier.ready();
  const publish = async (type: KeyEventType, key: Key) => {
    eventId += 1n;
    const event = create(KeyEventSchema, {
      id: eventId,
      type,
      keyId: key.id,
      teamId: key.teamId,
      occurTime: timestampFromMs(Date.now()),
    });
    await bus.publish(event, String(eventId));
  };
  const fixture: KeyCheckerFixture = {
    verifier,
    bus,
    get calls() {
      return calls;
    },
    issue(issueOptions = {}) {
      const token = generateToken({ prefix: "lk", environment: "test" });
      const key = create(KeySchema, {
        id: `key_${randomBase62(22)}`,
        teamId: issueOptions.teamId ?? "team_demo",
        name: issueOptions.name ?? "test-key",
        scopes: issueOptions.scopes ?? ["read"],
        environment: issueOptions.environment ?? "test",
        owner: issueOptions.owner ?? "",
        enabled: true,
      });
      keys.set(hashToken(token).toString("hex"), { key, revoked: false });
      return { token, key };
    },
    async revoke(key) {
      fixture.revokeSilently(key);
      await publish(KeyEventType.REVOKED, key);
    },
    revokeSilently(key) {
      for (const stored of keys.values()) if (stored.key.id === key.id) stored.revoked = true;
    },
    down: false,
    rateLimited: false,
    async close() {
      await verifier.close();
      await bus.close();
    },
  };
  return fixture;
}
