import { KeyEventType } from "@latchkey/proto";
import type { Logger } from "pino";
import type { KeyChecker, KeyInvalidation } from "./key-checker.js";

/** An open SSE response or WebSocket that a key opened. */
export interface LiveConnection {
  readonly kind: "sse" | "websocket";
  readonly keyId: string;
  /** The credential that opened it, to re-verify while it stays open; never logged. */
  readonly credential: string;
  readonly requiredScopes: readonly string[];
  /** Ends the connection: SSE response ended, WebSocket closed with 1008 (or 1001 at shutdown). */
  close(reason: "key revoked" | "going away"): void;
}

/** Options of {@link LiveConnections}. */
export interface LiveConnectionsOptions {
  readonly keyChecker: KeyChecker;
  readonly logger: Logger;
  /**
   * How often open connections are re-verified (the verifier's `maxStale`), so a
   * revocation that arrives by no event (NATS down) still ends them within the bound
   * that applies to new requests.
   */
  readonly recheckIntervalMs: number;
  /** Called with the connection's kind when one opens (+1) or ends (-1). */
  readonly onCountChange?: (kind: LiveConnection["kind"], delta: number) => void;
  /** Called for each connection closed because its key stopped being valid. */
  readonly onCutOff?: (kind: LiveConnection["kind"]) => void;
}

// Event types after which a key never verifies again: close without asking.
const TERMINAL = new Set<KeyEventType>([KeyEventType.REVOKED, KeyEventType.DISABLED, KeyEventType.EXPIRED]);
// Outcomes that mean the key no longer opens this connection. UNAVAILABLE is not one: streams stay
// open while the token-service is unreachable (new requests fail closed; cutting every stream would
// only cause a reconnect storm into 503s).
const CUT_OFF = new Set(["MALFORMED", "NOT_FOUND", "REVOKED", "EXPIRED", "DISABLED", "INSUFFICIENT_SCOPE"]);

/**
 * The registry of every open SSE stream and WebSocket, by key id. When the
 * verifier drops a key because it was revoked, disabled or expired, every
 * connection that key opened is closed; other key events (scopes changed,
 * rotated) make the connections re-verify. A timer re-verifies all of them
 * every `recheckIntervalMs` as well.
 */
export class LiveConnections {
  readonly #byKey = new Map<string, Set<LiveConnection>>();
  readonly #options: LiveConnectionsOptions;
  readonly #unsubscribe: () => void;
  #timer: NodeJS.Timeout | undefined;
  #size = 0;

  constructor(options: LiveConnectionsOptions) {
    this.#options = options;
    this.#unsubscribe = options.keyChecker.onInvalidate((invalidation) => this.#onInvalidate(invalidation));
  }

  /** Number of open connections. */
  get size(): number {
    return this.#size;
  }

  /** Registers a connection; the returned function unregisters it (call it when it ends). */
  add(connection: LiveConnection): () => void {
    let set = this.#byKey.get(connection.keyId);
    if (set === undefined) {
      set = new Set();
      this.#byKey.set(connection.keyId, set);
    }
    set.add(connection);
    this.#size++;
    this.#options.onCountChange?.(connection.kind, 1);
    this.#startTimer();
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      const current = this.#byKey.get(connection.keyId);
      if (current?.delete(connection)) {
        this.#size--;
        this.#options.onCountChange?.(connection.kind, -1);
        if (current.size === 0) this.#byKey.delete(connection.keyId);
      }
      if (this.#size === 0) this.#stopTimer();
    };
  }

  /** Closes every connection `keyId` opened; returns how many. */
  closeKey(keyId: string): number {
    const set = this.#byKey.get(keyId);
    if (set === undefined) return 0;
    const connections = [...set];
    for (const connection of connections) this.#cut(connection);
    return connections.length;
  }

  /**
   * Re-verifies every open connection (each distinct credential and scope set
   * once) and closes those whose key no longer verifies.
   */
  async recheck(keyId?: string): Promise<number> {
    const groups = new Map<string, LiveConnection[]>();
    const sets = keyId === undefined ? [...this.#byKey.values()] : [this.#byKey.get(keyId) ?? new Set()];
    for (const set of sets) {
      for (const connection of set) {
        const group = `${connection.credential}\n${connection.requiredScopes.join(" ")}`;
        const list = groups.get(group);
        if (list === undefined) groups.set(group, [connection]);
        else list.push(connection);
      }
    }
    let closed = 0;
    await Promise.all(
      [...groups.values()].map(async (connections) => {
        const first = connections[0] as LiveConnection;
        const outcome = await this.#options.keyChecker.verify(first.credential, {
          requiredScopes: first.requiredScopes,
        });
        if (outcome.ok || !CUT_OFF.has(outcome.code)) return;
        for (const connection of connections) {
          this.#cut(connection);
          closed++;
        }
      }),
    );
    return closed;
  }

  /** Closes every connection with "going away" and stops listening for key events. */
  close(): void {
    this.#unsubscribe();
    this.#stopTimer();
    for (const set of [...this.#byKey.values()])
      for (const connection of [...set]) connection.close("going away");
  }

  #cut(connection: LiveConnection): void {
    this.#options.logger.info(
      { keyId: connection.keyId, kind: connection.kind },
      "closing live connection: key no longer valid",
    );
    this.#options.onCutOff?.(connection.kind);
    connection.close("key revoked");
  }

  #onInvalidate(invalidation: KeyInvalidation): void {
    if (!this.#byKey.has(invalidation.keyId)) return;
    if (TERMINAL.has(invalidation.type)) {
      this.closeKey(invalidation.keyId);
      return;
    }
    this.recheck(invalidation.keyId).catch((error: unknown) => {
      this.#options.logger.warn(
        { err: error, keyId: invalidation.keyId },
        "re-verifying live connections failed",
      );
    });
  }

  #startTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(
      () => {
        this.recheck().catch((error: unknown) => {
          this.#options.logger.warn({ err: error }, "re-verifying live connections failed");
        });
      },
      Math.max(1000, this.#options.recheckIntervalMs),
    );
    this.#timer.unref();
  }

  #stopTimer(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
