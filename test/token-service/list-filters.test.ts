// List's filters (name, environment, state), as the admin console uses them: applied by the
// server before paging, combined with each other and with the team rule, and bad values refused.
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { KeyStateFilter } from "@latchkey/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

/** The filter fields of ListRequest. */
interface Filter {
  nameContains?: string;
  environment?: string;
  state?: KeyStateFilter;
  includeRevoked?: boolean;
}

let service: TestService;
let teamId: string;
/** Key ids by the name they were issued with. */
const ids = new Map<string, string>();

beforeAll(async () => {
  service = await startTestService();
  teamId = (await service.teams().createTeam({ name: "filtered" })).team?.id ?? "";
  const issue = async (name: string, environment = "live") => {
    const { key } = await service.tokens().issue({ teamId, name, environment });
    ids.set(name, key?.id ?? "");
    return key?.id ?? "";
  };
  await issue("prod-chat-worker", "prod");
  await issue("prod-billing", "prod");
  await issue("staging-chat", "staging");
  await issue("100%_literal");
  await issue("1000-other");
  await service.tokens().update({ keyId: await issue("paused-worker"), enabled: false });
  await service.tokens().revoke({ keyId: await issue("gone-worker") });
  // Rotated with no grace period: the old key is expired now, its replacement active.
  const rotated = await service
    .tokens()
    .rotate({ keyId: await issue("rotated-worker"), gracePeriod: durationFromMs(0) });
  ids.set("rotated-worker (new)", rotated.key?.id ?? "");
  // Another team's key of the same name never shows.
  const other = (await service.teams().createTeam({ name: "filtered-other" })).team?.id ?? "";
  await service.tokens().issue({ teamId: other, name: "prod-chat-worker", environment: "prod" });
});
afterAll(() => service?.close());

/** Every page of a filtered listing, two keys a page, as names. */
async function names(filter: Filter): Promise<string[]> {
  const byId = new Map([...ids].map(([name, id]) => [id, name]));
  const found: string[] = [];
  let pageToken = "";
  do {
    const page = await service.tokens().list({ teamId, pageSize: 2, pageToken, ...filter });
    found.push(...page.keys.map((key) => byId.get(key.id) ?? key.id));
    pageToken = page.nextPageToken;
  } while (pageToken !== "" && found.length < 100);
  return found.sort();
}

describe("List filters", () => {
  it("keeps names containing the text, ignoring case, across pages", async () => {
    expect(await names({ nameContains: "WORKER" })).toEqual([
      "paused-worker",
      "prod-chat-worker",
      "rotated-worker",
      "rotated-worker (new)",
    ]);
    expect(await names({ nameContains: "chat" })).toEqual(["prod-chat-worker", "staging-chat"]);
  });

  it("matches % and _ literally", async () => {
    expect(await names({ nameContains: "%_" })).toEqual(["100%_literal"]);
    expect(await names({ nameContains: "0%" })).toEqual(["100%_literal"]);
    expect(await names({ nameContains: "_" })).toEqual(["100%_literal"]);
  });

  it("keeps one environment", async () => {
    expect(await names({ environment: "prod" })).toEqual(["prod-billing", "prod-chat-worker"]);
    expect(await names({ environment: "dev" })).toEqual([]);
  });

  it("keeps one state, revoked included only when asked for", async () => {
    expect(await names({ state: KeyStateFilter.DISABLED })).toEqual(["paused-worker"]);
    expect(await names({ state: KeyStateFilter.REVOKED })).toEqual(["gone-worker"]);
    expect(await names({ state: KeyStateFilter.EXPIRED })).toEqual(["rotated-worker"]);
    const active = await names({ state: KeyStateFilter.ACTIVE, includeRevoked: true });
    expect(active).not.toContain("gone-worker");
    expect(active).not.toContain("paused-worker");
    expect(active).not.toContain("rotated-worker");
    expect(active).toContain("rotated-worker (new)");
    expect(active).toHaveLength(6);
  });

  it("combines filters", async () => {
    expect(await names({ nameContains: "worker", state: KeyStateFilter.ACTIVE })).toEqual([
      "prod-chat-worker",
      "rotated-worker (new)",
    ]);
    expect(await names({ nameContains: "chat", environment: "staging" })).toEqual(["staging-chat"]);
    expect(await names({ nameContains: "gone", includeRevoked: true })).toEqual(["gone-worker"]);
    expect(await names({ nameContains: "gone" })).toEqual([]);
  });

  it.each<[string, Filter, string]>([
    ["a name filter over 100 characters", { nameContains: "x".repeat(101) }, "name_contains"],
    ["a control character", { nameContains: "a\u0000b" }, "name_contains"],
    ["a bad environment label", { environment: "Prod!" }, "environment"],
    ["an unknown state", { state: 99 as KeyStateFilter }, "state"],
  ])("refuses %s as INVALID_ARGUMENT naming the field", async (_what, filter, field) => {
    const error = await rpcError(service.tokens().list({ teamId, ...filter }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain(field);
  });

  it.each([
    ["a NUL in its id", ["2026-01-01T00:00:00Z", "key_\u0000"]],
    ["a time before PostgreSQL's range", ["-271821-04-20T00:00:00Z", "key_x"]],
  ])("refuses a forged page token with %s as INVALID_ARGUMENT, not INTERNAL", async (_what, cursor) => {
    const pageToken = Buffer.from(JSON.stringify(cursor)).toString("base64url");
    const error = await rpcError(service.tokens().list({ teamId, nameContains: "worker", pageToken }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain("page_token");
  });
});
