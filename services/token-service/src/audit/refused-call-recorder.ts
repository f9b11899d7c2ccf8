import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { ANONYMOUS_ACTOR } from "../auth/principal.js";
import type { Database } from "../db/tables.js";
import { type AuditEntry, recordAudits } from "./audit.repository.js";

/** An admin call refused as unauthenticated or permission denied, as the audit log keeps it. */
export interface RefusedCall {
  /** `latchkey.v1.TokenService/Issue`. */
  readonly procedure: string;
  readonly code: "unauthenticated" | "permission_denied";
  /** The message the caller got (it never names another team's keys). */
  readonly message: string;
  /** `root`, the presented key's id when that key exists, or `anonymous`. */
  readonly actor: string;
  /** The presented key's team, when known. */
  readonly teamId: string | undefined;
  /** `missing`, `malformed` or `key` (see `presentedCredential`). */
  readonly credential: string;
  /** The presented key's hint, for `key`; never the key. */
  readonly keyHint: string | undefined;
  readonly requestId: string;
  readonly peer: string | undefined;
}

/** Options of {@link createRefusedCallRecorder}. */
export interface RefusedCallRecorderOptions {
  readonly db: Kysely<Database>;
  readonly logger: Logger;
  /** Rows this replica writes per minute at most (`auditRefusedCallsPerMinute`); the rest are counted. */
  readonly maxRowsPerMinute: number;
  /** How often pending refusals are written, in one statement (default 1 s). */
  readonly flushMs?: number;
  /** Where `latchkey_token_service_admin_refusals_total` goes. */
  readonly registry?: Registry;
  readonly now?: () => number;
}

/** Writes refused admin calls to the audit log off the request path, bounded (see {@link createRefusedCallRecorder}). */
export interface RefusedCallRecorder {
  /** Takes one refused call; never waits, never throws. */
  record(call: RefusedCall): void;
  /** Writes what is pending now (tests, shutdown). */
  flush(): Promise<void>;
  /** Stops the timer and writes what is pending. */
  close(): Promise<void>;
}

interface Pending {
  readonly call: RefusedCall;
  count: number;
  firstSeen: number;
  lastSeen: number;
}

/**
 * Refused admin calls cost an attacker nothing, so each one must not cost the
 * database a write, and a flood must not grow the audit log without bound.
 * This recorder keeps them in memory and writes them every `flushMs` in one
 * INSERT: identical refusals (same procedure, code, actor, team, credential,
 * hint and message) within one flush become one row with a `count`; at most
 * `maxRowsPerMinute` rows a minute are written (a token bucket); refusals
 * past that, or past a bounded number of distinct pending entries, are only
 * counted, and once a minute one `call.refusals_dropped` row says how many.
 * So a flood writes at most `maxRowsPerMinute + 1` rows a minute per replica,
 * which the retention sweep then ages out. A failed write is logged and
 * dropped: the recorder never retries without bound.
 *
 * @example
 * ```ts
 * const refused = createRefusedCallRecorder({ db, logger, maxRowsPerMinute: 120 });
 * refused.record({ procedure, code: "unauthenticated", ... });
 * ```
 */
export function createRefusedCallRecorder(options: RefusedCallRecorderOptions): RefusedCallRecorder {
  const { db, logger, maxRowsPerMinute } = options;
  const now = options.now ?? Date.now;
  const flushMs = options.flushMs ?? 1_000;
  const maxPending = Math.max(maxRowsPerMinute, 100);
  const pending = new Map<string, Pending>();
  const refusals = new Counter({
    name: "latchkey_token_service_admin_refusals_total",
    help: "Admin calls refused as unauthenticated or permission denied, by code and whether the audit log got a row for them",
    labelNames: ["code", "recorded"],
    registers: options.registry === undefined ? [] : [options.registry],
  });
  let budget = maxRowsPerMinute;
  let budgetAt = now();
  let dropped = 0;
  let droppedSince = 0;
  let lastDroppedRow = Number.NEGATIVE_INFINITY;
  let writing: Promise<void> = Promise.resolve();

  const drop = (count: number, at: number) => {
    if (dropped === 0) droppedSince = at;
    dropped += count;
  };

  const take = (): AuditEntry[] => {
    const at = now();
    budget = Math.min(maxRowsPerMinute, budget + ((at - budgetAt) * maxRowsPerMinute) / 60_000);
    budgetAt = at;
    const rows: AuditEntry[] = [];
    for (const entry of pending.values()) {
      if (budget < 1) {
        drop(entry.count, entry.firstSeen);
        refusals.inc({ code: entry.call.code, recorded: "no" }, entry.count);
        continue;
      }
      budget -= 1;
      refusals.inc({ code: entry.call.code, recorded: "yes" }, entry.count);
      rows.push(rowOf(entry));
    }
    pending.clear();
    if (dropped > 0 && at - lastDroppedRow >= 60_000) {
      rows.push({
        actor: ANONYMOUS_ACTOR,
        action: "call.refusals_dropped",
        details: {
          count: dropped,
          since: new Date(droppedSince).toISOString(),
          reason: `more than ${maxRowsPerMinute} refused admin calls a minute (LATCHKEY_AUDIT_REFUSED_CALLS_PER_MINUTE)`,
        },
      });
      lastDroppedRow = at;
      dropped = 0;
    }
    return rows;
  };

  const flush = (): Promise<void> => {
    writing = writing.then(async () => {
      const rows = take();
      if (rows.length === 0) return;
      try {
        await recordAudits(db, rows);
      } catch (error) {
        logger.warn(
          { err: error, rows: rows.length },
          "refused admin calls could not be written to the audit log",
        );
      }
    });
    return writing;
  };

  const timer = setInterval(() => void flush(), flushMs);
  timer.unref();

  return {
    record(call) {
      const key = [
        call.procedure,
        call.code,
        call.actor,
        call.teamId,
        call.credential,
        call.keyHint,
        call.message,
      ].join("\u0000");
      const at = now();
      const entry = pending.get(key);
      if (entry !== undefined) {
        entry.count += 1;
        entry.lastSeen = at;
      } else if (pending.size < maxPending) {
        pending.set(key, { call, count: 1, firstSeen: at, lastSeen: at });
      } else {
        drop(1, at);
        refusals.inc({ code: call.code, recorded: "no" });
      }
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}

function rowOf(entry: Pending): AuditEntry {
  const { call } = entry;
  return {
    actor: call.actor,
    action: `call.${call.code}`,
    teamId: call.teamId,
    requestId: call.requestId,
    details: {
      procedure: call.procedure,
      code: call.code,
      message: call.message,
      credential: call.credential,
      ...(call.keyHint === undefined ? {} : { keyHint: call.keyHint }),
      ...(call.peer === undefined ? {} : { peer: call.peer }),
      count: entry.count,
      firstSeen: new Date(entry.firstSeen).toISOString(),
      lastSeen: new Date(entry.lastSeen).toISOString(),
    },
  };
}
