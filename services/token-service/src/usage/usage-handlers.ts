import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type GetUsageRequest,
  type GetUsageResponseSchema,
  type KeyTrafficSchema,
  UsageGranularity,
} from "@latchkey/proto";
import { assertTeamAccess } from "../auth/admin-authenticator.js";
import type { ApiKeyRow } from "../db/tables.js";
import { beginAdminCall, visibleKey } from "../rpc/admin-call.js";
import type { ServiceDeps } from "../rpc/service-deps.js";
import { invalidArgument, optionalInstant, requireKeyId, requireTeamId } from "../rpc/validate.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import { requestsSince, type UsageUnit, usageBuckets } from "./usage-queries.js";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** Each granularity: its `date_trunc` unit, its size, and the widest window it answers. */
const GRANULARITIES: Readonly<
  Record<
    Exclude<UsageGranularity, UsageGranularity.UNSPECIFIED>,
    { unit: UsageUnit; ms: number; maxWindowMs: number; max: string }
  >
> = {
  [UsageGranularity.MINUTE]: { unit: "minute", ms: MINUTE_MS, maxWindowMs: DAY_MS, max: "24 hours" },
  [UsageGranularity.HOUR]: { unit: "hour", ms: HOUR_MS, maxWindowMs: 31 * DAY_MS, max: "31 days" },
  [UsageGranularity.DAY]: { unit: "day", ms: DAY_MS, maxWindowMs: 366 * DAY_MS, max: "366 days" },
};

/**
 * GetUsage: one key's or one team's requests per minute, hour or day, by
 * outcome. A team admin sees only its own team (another team's key is
 * NOT_FOUND, as in Get; another team is PERMISSION_DENIED, as in List).
 */
export async function getUsage(
  deps: ServiceDeps,
  request: GetUsageRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof GetUsageResponseSchema>> {
  const principal = await beginAdminCall(deps, ctx, request);
  if ((request.keyId === "") === (request.teamId === "")) {
    throw invalidArgument("GetUsageRequest", "set exactly one of key_id and team_id");
  }
  const granularity = GRANULARITIES[request.granularity as keyof typeof GRANULARITIES];
  if (granularity === undefined) throw invalidArgument("granularity", "must be MINUTE, HOUR or DAY");
  const now = Date.now();
  const startMs = optionalInstant(request.startTime, "start_time");
  const endMs = request.endTime === undefined ? now : optionalInstant(request.endTime, "end_time");
  if (startMs === undefined) throw invalidArgument("start_time", "is required");
  if (endMs === undefined) throw invalidArgument("end_time", "is invalid");
  if (endMs <= startMs) throw invalidArgument("end_time", "must be after start_time");
  if (endMs - startMs > granularity.maxWindowMs) {
    throw invalidArgument("start_time", `the window must be at most ${granularity.max} at this granularity`);
  }
  let subject: { keyId: string } | { teamId: string };
  if (request.keyId !== "") {
    const keyId = requireKeyId(request.keyId);
    await visibleKey(deps.db, principal, keyId);
    subject = { keyId };
  } else {
    const teamId = requireTeamId(request.teamId);
    assertTeamAccess(principal, teamId);
    subject = { teamId };
  }
  // Buckets are whole units: the window starts at the start of its first one.
  const start = Math.floor(startMs / granularity.ms) * granularity.ms;
  const rows = await usageBuckets(deps.db, subject, {
    unit: granularity.unit,
    start: new Date(start),
    end: new Date(endMs),
  });
  const buckets: Array<{ at: number; total: bigint; counts: Array<{ outcome: number; count: bigint }> }> = [];
  let total = 0n;
  for (const row of rows) {
    const at = row.bucket.getTime();
    let bucket = buckets.at(-1);
    if (bucket === undefined || bucket.at !== at) {
      bucket = { at, total: 0n, counts: [] };
      buckets.push(bucket);
    }
    const count = BigInt(row.count);
    bucket.total += count;
    bucket.counts.push({ outcome: row.outcome, count });
    total += count;
  }
  return {
    buckets: buckets.map(({ at, total, counts }) => ({ startTime: timestampFromMs(at), total, counts })),
    total,
  };
}

/**
 * Recent traffic of keys (the last five minutes, the current one included),
 * in one grouped query: for Get (a key and its predecessor) and Rotate (the
 * replaced key).
 *
 * @example
 * ```ts
 * const [traffic] = await keyTraffic(deps, [row]);
 * ```
 */
export async function keyTraffic(
  deps: Pick<ServiceDeps, "db">,
  rows: readonly ApiKeyRow[],
): Promise<Array<MessageInitShape<typeof KeyTrafficSchema>>> {
  const since = new Date(Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS - 4 * MINUTE_MS);
  const counts = await requestsSince(
    deps.db,
    rows.map((row) => row.id),
    since,
  );
  return rows.map((row) => ({
    keyId: row.id,
    requestsLast5m: BigInt(counts.get(row.id) ?? 0),
    ...(row.last_used_at ? { lastUsedTime: timestampFromDate(row.last_used_at) } : {}),
  }));
}

/**
 * Requests of each key over the last 24 hours, for a page of keys in one query.
 *
 * @example
 * ```ts
 * const counts = await requestsLast24h(deps, page);
 * ```
 */
export function requestsLast24h(
  deps: Pick<ServiceDeps, "db">,
  rows: readonly ApiKeyRow[],
): Promise<Map<string, number>> {
  return requestsSince(
    deps.db,
    rows.map((row) => row.id),
    new Date(Date.now() - DAY_MS),
  );
}
