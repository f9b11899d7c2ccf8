// GetUsage refuses hostile input with INVALID_ARGUMENT naming the field, and
// keeps a team admin inside its own team, like the other admin RPCs.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { UsageGranularity } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
let service: TestService;
let teamId: string;
let keyId: string;
let admin: { teamId: string; adminKey: string; adminKeyId: string };
let otherKeyId: string;

beforeAll(async () => {
  service = await startTestService();
  teamId = (await service.teams().createTeam({ name: "usage-input" })).team?.id ?? "";
  keyId = (await service.tokens().issue({ teamId, name: "k", scopes: ["read"] })).key?.id ?? "";
  admin = await service.teamWithAdmin("usage-admin");
  otherKeyId = (await service.tokens().issue({ teamId: admin.teamId, name: "own" })).key?.id ?? "";
});
afterAll(() => service?.close());

const ago = (ms: number) => timestampFromMs(Date.now() - ms);

describe("GetUsage refuses bad input", () => {
  const cases: Array<[string, () => Parameters<ReturnType<TestService["tokens"]>["getUsage"]>[0], string]> = [
    [
      "neither key nor team",
      () => ({ startTime: ago(HOUR), granularity: UsageGranularity.MINUTE }),
      "GetUsageRequest: set exactly one of key_id and team_id",
    ],
    [
      "both key and team",
      () => ({ keyId, teamId, startTime: ago(HOUR), granularity: UsageGranularity.MINUTE }),
      "GetUsageRequest: set exactly one",
    ],
    ["no granularity", () => ({ keyId, startTime: ago(HOUR) }), "granularity: must be MINUTE, HOUR or DAY"],
    [
      "an unknown granularity",
      () => ({ keyId, startTime: ago(HOUR), granularity: 42 as UsageGranularity }),
      "granularity:",
    ],
    ["no start", () => ({ keyId, granularity: UsageGranularity.MINUTE }), "start_time: is required"],
    [
      "a reversed window",
      () => ({ keyId, startTime: ago(0), endTime: ago(HOUR), granularity: UsageGranularity.HOUR }),
      "end_time: must be after start_time",
    ],
    [
      "an empty window",
      () => {
        // One instant for both ends: two calls to Date.now() can be a millisecond apart.
        const at = ago(HOUR);
        return { keyId, startTime: at, endTime: at, granularity: UsageGranularity.HOUR };
      },
      "end_time: must be after start_time",
    ],
    [
      "25 hours of minutes",
      () => ({ keyId, startTime: ago(25 * HOUR), granularity: UsageGranularity.MINUTE }),
      "start_time: the window must be at most 24 hours",
    ],
    [
      "32 days of hours",
      () => ({ keyId, startTime: ago(32 * DAY), granularity: UsageGranularity.HOUR }),
      "start_time: the window must be at most 31 days",
    ],
    [
      "367 days of days",
      () => ({ keyId, startTime: ago(367 * DAY), granularity: UsageGranularity.DAY }),
      "start_time: the window must be at most 366 days",
    ],
    [
      "a time before 1970",
      () => ({ keyId, startTime: { seconds: -5n, nanos: 0 }, granularity: UsageGranularity.DAY }),
      "start_time: must be a time between 1970 and 9999",
    ],
    [
      "a time after 9999",
      () => ({
        keyId,
        startTime: ago(HOUR),
        endTime: { seconds: 300_000_000_000n, nanos: 0 },
        granularity: UsageGranularity.DAY,
      }),
      "end_time: must be a time between 1970 and 9999",
    ],
    [
      "bad nanos",
      () => ({ keyId, startTime: { seconds: 5n, nanos: -1 }, granularity: UsageGranularity.DAY }),
      "start_time: must be a time",
    ],
    [
      "a malformed key id",
      () => ({ keyId: "key_../x", startTime: ago(HOUR), granularity: UsageGranularity.MINUTE }),
      "key_id: must look like key_",
    ],
    [
      "a malformed team id",
      () => ({ teamId: "team_*", startTime: ago(HOUR), granularity: UsageGranularity.MINUTE }),
      "team_id: must look like team_",
    ],
  ];
  it.each(cases)("%s", async (_name, request, message) => {
    const error = await rpcError(service.tokens().getUsage(request()));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain(message);
  });

  it("answers an unknown key as NOT_FOUND and an empty window with no buckets", async () => {
    const missing = await rpcError(
      service
        .tokens()
        .getUsage({ keyId: "key_0000000000000000000000", startTime: ago(HOUR), granularity: 1 }),
    );
    expect(missing.code).toBe(Code.NotFound);
    // The widest windows are allowed, whatever their start rounds down to.
    for (const [granularity, width] of [
      [UsageGranularity.MINUTE, DAY],
      [UsageGranularity.HOUR, 31 * DAY],
      [UsageGranularity.DAY, 366 * DAY],
    ] as const) {
      const end = Date.now();
      await service.tokens().getUsage({
        keyId,
        startTime: timestampFromMs(end - width + 1_234),
        endTime: timestampFromMs(end),
        granularity,
      });
    }
    const empty = await service
      .tokens()
      .getUsage({ keyId, startTime: ago(HOUR), granularity: UsageGranularity.MINUTE });
    expect(empty).toMatchObject({ buckets: [], total: 0n });
  });
});

describe("GetUsage authorization", () => {
  it("needs an admin key", async () => {
    const error = await rpcError(
      service.tokens(null).getUsage({ keyId, startTime: ago(HOUR), granularity: UsageGranularity.HOUR }),
    );
    expect(error.code).toBe(Code.Unauthenticated);
  });

  it("shows a team admin its own team and keys only", async () => {
    const own = service.tokens(admin.adminKey);
    await own.getUsage({ teamId: admin.teamId, startTime: ago(HOUR), granularity: UsageGranularity.HOUR });
    await own.getUsage({ keyId: otherKeyId, startTime: ago(HOUR), granularity: UsageGranularity.HOUR });
    const team = await rpcError(
      own.getUsage({ teamId, startTime: ago(HOUR), granularity: UsageGranularity.HOUR }),
    );
    expect(team.code).toBe(Code.PermissionDenied);
    // Another team's key is not even confirmed to exist.
    const key = await rpcError(
      own.getUsage({ keyId, startTime: ago(HOUR), granularity: UsageGranularity.HOUR }),
    );
    expect(key.code).toBe(Code.NotFound);
  });
});
