// Verify is POST only: a Connect GET would carry the token in the URL, where
// proxies and access logs keep it. Get and List keep GET: the admin key is in
// the Authorization header, and the URL holds only ids.
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getConnect, postConnect } from "./raw-calls.js";
import { ROOT_KEY, startTestService, type TestService } from "./start.js";

const logLines: string[] = [];
let service: TestService;
let key: { id: string; teamId: string; token: string };
beforeAll(async () => {
  // Debug level: the logging interceptor writes one "rpc" line for every call that reaches the handlers.
  service = await startTestService({
    logger: pino({ level: "debug" }, { write: (line: string) => logLines.push(line) }),
  });
  const { team } = await service.teams().createTeam({ name: "get-policy" });
  const issued = await service.tokens().issue({ teamId: team?.id ?? "", name: "reader", scopes: ["read"] });
  key = { id: issued.key?.id ?? "", teamId: team?.id ?? "", token: issued.token };
});
afterAll(() => service?.close());

const VERIFY = "latchkey.v1.TokenService/Verify";

describe("a Connect GET to Verify", () => {
  it("is refused with 405 and an empty body, never reaches the handler, and leaves no token in the log", async () => {
    const requestId = "verify-by-get";
    const answer = await getConnect(
      service.connectUrl,
      VERIFY,
      { token: key.token },
      { "x-request-id": requestId },
    );
    expect(answer.status).toBe(405);
    expect(answer.body).toBe("");
    expect(answer.body).not.toContain(key.token);
    const verifyLines = logLines.filter((line) => line.includes(requestId) || line.includes(VERIFY));
    expect(verifyLines).toEqual([]);
    expect(logLines.join("\n")).not.toContain(key.token);
  });

  it("leaves Verify by POST working", async () => {
    const answer = await postConnect(
      service.connectUrl,
      VERIFY,
      JSON.stringify({ token: key.token }),
      "application/json",
    );
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({
      result: "VERIFY_RESULT_VALID",
    });
  });
});

describe("a Connect GET to Get and List", () => {
  it("is answered with the admin key in the Authorization header", async () => {
    const auth = { authorization: `Bearer ${ROOT_KEY}` };
    const got = await getConnect(service.connectUrl, "latchkey.v1.TokenService/Get", { keyId: key.id }, auth);
    expect(got.status).toBe(200);
    expect(JSON.parse(got.body)).toMatchObject({ key: { id: key.id } });
    const listed = await getConnect(
      service.connectUrl,
      "latchkey.v1.TokenService/List",
      { teamId: key.teamId },
      auth,
    );
    expect(listed.status).toBe(200);
    expect(JSON.parse(listed.body)).toMatchObject({ keys: [{ id: key.id }] });
  });

  it("is UNAUTHENTICATED without the header: the URL carries no credential", async () => {
    const answer = await getConnect(service.connectUrl, "latchkey.v1.TokenService/Get", { keyId: key.id });
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body)).toMatchObject({ code: "unauthenticated" });
  });
});
