import { describe, expect, it } from "vitest";
import {
  CONFLICTING_CREDENTIALS,
  INVALID_CREDENTIAL,
  insufficientScope,
  MISSING_CREDENTIAL,
  rateLimited,
  refusalBody,
  refusalHeaders,
  UNAVAILABLE,
} from "./refusal.js";

const header = (headers: string[], name: string) => headers[headers.indexOf(name) + 1];

describe("refusals", () => {
  it("have the JSON body { error: { code, message, requestId } }", () => {
    expect(JSON.parse(refusalBody(INVALID_CREDENTIAL, "r-1"))).toEqual({
      error: { code: "invalid_token", message: INVALID_CREDENTIAL.message, requestId: "r-1" },
    });
  });

  it("follow RFC 6750: no error parameter without a credential, invalid_token, insufficient_scope with scope", () => {
    expect(MISSING_CREDENTIAL.headers).toEqual([["www-authenticate", 'Bearer realm="latchkey"']]);
    expect(INVALID_CREDENTIAL.headers).toEqual([
      ["www-authenticate", 'Bearer realm="latchkey", error="invalid_token"'],
    ]);
    expect(CONFLICTING_CREDENTIALS.status).toBe(400);
    const forbidden = insufficientScope(["write", "chats:write"]);
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers).toEqual([
      ["www-authenticate", 'Bearer realm="latchkey", error="insufficient_scope", scope="write chats:write"'],
    ]);
  });

  it("tell the client when to retry", () => {
    expect(rateLimited(2.2).headers).toEqual([["retry-after", "3"]]);
    expect(rateLimited(0).headers).toEqual([["retry-after", "1"]]);
    expect(UNAVAILABLE.status).toBe(503);
    expect(UNAVAILABLE.headers[0]?.[0]).toBe("retry-after");
  });

  it("are JSON, uncacheable and carry the request id", () => {
    const body = refusalBody(UNAVAILABLE, "r-2");
    const headers = refusalHeaders(UNAVAILABLE, "r-2", body);
    expect(header(headers, "content-type")).toBe("application/json");
    expect(header(headers, "cache-control")).toBe("no-store");
    expect(header(headers, "x-request-id")).toBe("r-2");
    expect(Number(header(headers, "content-length"))).toBe(Buffer.byteLength(body));
  });
});
