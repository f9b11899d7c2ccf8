import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type Transport } from "@connectrpc/connect";
import type { KeyEventBus, KeyEventSubscriber } from "@latchkey/events";
import {
  type Key,
  type KeyEvent,
  KeyEventSchema,
  KeyEventType,
  KeySchema,
  TokenService,
  type VerifyRequest,
  type VerifyResponse,
  VerifyResponseSchema,
  VerifyResult,
} from "@latchkey/proto";
import { generateToken, hashToken, randomBase62 } from "@latchkey/token";

/**
 * An in-memory TokenService Verify for the SDK's unit tests (the connect-es
 * `createRouterTransport` pattern): it holds keys by token, counts calls, and
 * can be told to fail or to hold answers until released.
 */
export interface TokenServiceStub {
  readonly transport: Transport;
  /** Verify calls received. */
  readonly calls: number;
  /** Every request received, in order. */
  readonly requests: readonly VerifyRequest[];
  /** Issues a key and returns its token and public fields. */
  issue(options?: { scopes?: string[]; expiresAt?: number }): { token: string; key: Key };
  revoke(token: string): void;
  setEnabled(token: string, enabled: boolean): void;
  /** While set, every call fails with this code. */
  failWith: Code | undefined;
  /** While set, every call answers this, however wrong (an unknown result code, VALID without a key). */
  answerWith: VerifyResponse | undefined;
  /** Holds every answer (as of the request's arrival) until {@link release} is called. */
  hold(): void;
  release(): void;
}

interface StoredKey {
  key: Key;
  revoked: boolean;
}

export function createTokenServiceStub(): TokenServiceStub {
  const keys = new Map<string, StoredKey>();
  const requests: VerifyRequest[] = [];
  let held: { promise: Promise<void>; resolve: () => void } | undefined;
  function answerFor(token: string): VerifyResponse | ConnectError {
    if (stub.failWith !== undefined) return new ConnectError("token-service is down", stub.failWith);
    if (stub.answerWith !== undefined) return stub.answerWith;
    const stored = keys.get(token);
    const result = (r: VerifyResult, key?: Key) => create(VerifyResponseSchema, { result: r, key });
    if (stored === undefined) return result(VerifyResult.NOT_FOUND);
    if (stored.revoked) return result(VerifyResult.REVOKED);
    const expireTime = stored.key.expireTime;
    if (expireTime !== undefined && Number(expireTime.seconds) * 1000 <= Date.now()) {
      return result(VerifyResult.EXPIRED);
    }
    if (!stored.key.enabled) return result(VerifyResult.DISABLED);
    return result(VerifyResult.VALID, stored.key);
  }
  const stub: TokenServiceStub = {
    transport: createRouterTransport(({ service }) => {
      service(TokenService, {
        async verify(request) {
          requests.push(request);
          // The answer reflects the moment the request arrives; holding delays only its delivery.
          const answer = answerFor(request.token);
          if (held !== undefined) await held.promise;
          if (answer instanceof ConnectError) throw answer;
          return answer;
        },
      });
    }),
    get calls() {
      return requests.length;
    },
    requests,
    issue(options = {}) {
      const token = generateToken({ prefix: "lk", environment: "test" });
      const key = create(KeySchema, {
        id: `key_${randomBase62(22)}`,
        teamId: "team_1",
        name: "test-key",
        scopes: options.scopes ?? ["read"],
        environment: "test",
        enabled: true,
        metadata: { owner: "tests" },
        ...(options.expiresAt !== undefined ? { expireTime: timestampFromMs(options.expiresAt) } : {}),
      });
      keys.set(token, { key, revoked: false });
      return { token, key };
    },
    revoke(token) {
      const stored = keys.get(token);
      if (stored !== undefined) stored.revoked = true;
    },
    setEnabled(token, enabled) {
      const stored = keys.get(token);
      if (stored !== undefined) stored.key.enabled = enabled;
    },
    failWith: undefined,
    answerWith: undefined,
    hold() {
      let resolve = () => {};
      const promise = new Promise<void>((r) => (resolve = r));
      held = { promise, resolve };
    },
    release() {
      held?.resolve();
      held = undefined;
    },
  };
  return stub;
}

let nextEventId = 0n;

/** A key event as the token-service's outbox publisher would send it. */
export function keyEvent(type: KeyEventType, key: Key, token?: string): KeyEvent {
  nextEventId += 1n;
  return create(KeyEventSchema, {
    id: nextEventId,
    type,
    keyId: key.id,
    teamId: key.teamId,
    ...(token !== undefined ? { tokenHash: hashToken(token) } : {}),
  });
}

/**
 * A bus over the in-process one whose connection a test controls: while "cut",
 * events are withheld from the subscriber, `lastSequence` and outbox currency
 * requests fail, and the subscriber is told it is disconnected; `gap()` reports
 * lost events.
 */
export interface ControlledBus extends KeyEventBus {
  cut(): void;
  restore(): void;
  gap(): void;
}

export function createControlledBus(inner: KeyEventBus): ControlledBus {
  let cut = false;
  const subscribers: KeyEventSubscriber[] = [];
  return {
    ...inner,
    publish: (event, messageId) => inner.publish(event, messageId),
    lastSequence: async () => {
      if (cut) throw new ConnectError("bus is cut off", Code.Unavailable);
      return inner.lastSequence();
    },
    requestOutboxCurrency: async (request, timeoutMs) => {
      if (cut) throw new ConnectError("bus is cut off", Code.Unavailable);
      return inner.requestOutboxCurrency(request, timeoutMs);
    },
    async subscribe(subscriber, options) {
      subscribers.push(subscriber);
      return inner.subscribe(
        {
          onEvent: (delivery) => {
            if (cut) throw new Error("a cut-off subscriber must not receive events");
            return subscriber.onEvent(delivery);
          },
          onGap: (info) => subscriber.onGap?.(info),
          onConnectionChange: (connected) => subscriber.onConnectionChange?.(connected && !cut),
        },
        options,
      );
    },
    isConnected: () => !cut && inner.isConnected(),
    cut() {
      cut = true;
      for (const subscriber of subscribers) subscriber.onConnectionChange?.(false);
    },
    restore() {
      cut = false;
      for (const subscriber of subscribers) subscriber.onConnectionChange?.(true);
    },
    gap() {
      for (const subscriber of subscribers) subscriber.onGap?.({ afterSequence: 0, firstAvailable: 1_000 });
    },
  };
}

export { KeyEventType };
