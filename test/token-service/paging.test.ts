// List and ListTeams page through everything once, in order, with opaque
// page tokens; CreateTeam names are unique.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError } from "./rpc-error.js";
import { startTestService, type TestService } from "./start.js";

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(() => service?.close());

async function allPages<T>(fetchPage: (pageToken: string) => Promise<{ items: T[]; next: string }>) {
  const pages: T[][] = [];
  let pageToken = "";
  do {
    const { items, next } = await fetchPage(pageToken);
    pages.push(items);
    pageToken = next;
  } while (pageToken !== "" && pages.length < 100);
  return pages;
}

describe("List", () => {
  let teamId: string;
  /** Key ids in List order: newest first, ties broken by id, descending. */
  let newestFirst: string[];
  beforeAll(async () => {
    teamId = (await service.teams().createTeam({ name: "paged" })).team?.id ?? "";
    const issued: Array<{ id: string; at: number }> = [];
    for (let i = 0; i < 7; i++) {
      const { key } = await service.tokens().issue({ teamId, name: `key-${i}` });
      issued.push({ id: key?.id ?? "", at: key?.createTime ? timestampDate(key.createTime).getTime() : 0 });
    }
    newestFirst = issued.sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1)).map((k) => k.id);
    // Another team's keys never show up.
    const other = (await service.teams().createTeam({ name: "paged-other" })).team?.id ?? "";
    await service.tokens().issue({ teamId: other, name: "elsewhere" });
  });

  const list = (pageSize: number, includeRevoked = false) =>
    allPages(async (pageToken) => {
      const page = await service.tokens().list({ teamId, pageSize, pageToken, includeRevoked });
      return { items: page.keys.map((k) => k.id), next: page.nextPageToken };
    });

  it("returns 7 keys as pages of 3, 3 and 1, newest first, each once", async () => {
    const pages = await list(3);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual(newestFirst);
  });

  it("ends with an empty next_page_token when the last page is full", async () => {
    const pages = await list(7);
    expect(pages.map((p) => p.length)).toEqual([7]);
    expect((await list(0)).flat()).toHaveLength(7);
  });

  it("leaves revoked keys out unless include_revoked is set", async () => {
    const revoked = [newestFirst[1], newestFirst[4]] as string[];
    for (const keyId of revoked) await service.tokens().revoke({ keyId });
    const live = (await list(2)).flat();
    expect(live).toHaveLength(5);
    expect(live).not.toContain(revoked[0]);
    const everything = (await list(2, true)).flat();
    expect(everything).toEqual(newestFirst);
  });
});

describe("CreateTeam and ListTeams", () => {
  it("refuses a second team with the same name as ALREADY_EXISTS", async () => {
    await service.teams().createTeam({ name: "unique-name" });
    const error = await rpcError(service.teams().createTeam({ name: "unique-name" }));
    expect(error.code).toBe(Code.AlreadyExists);
    expect(error.rawMessage).toContain("unique-name");
  });

  it("pages through every team, oldest first, each once", async () => {
    for (let i = 0; i < 5; i++) await service.teams().createTeam({ name: `listed-${i}` });
    const all = (await service.teams().listTeams({ pageSize: 500 })).teams.map((t) => t.name);
    const pages = await allPages(async (pageToken) => {
      const page = await service.teams().listTeams({ pageSize: 2, pageToken });
      return { items: page.teams.map((t) => t.name), next: page.nextPageToken };
    });
    expect(pages.every((p) => p.length <= 2)).toBe(true);
    expect(pages.flat()).toEqual(all);
    expect(new Set(all).size).toBe(all.length);
    expect([...all.slice(-5)].sort()).toEqual(["listed-0", "listed-1", "listed-2", "listed-3", "listed-4"]);
  });
});
