// The browser side of verify-from-browser.test.ts, bundled by esbuild into the test page: what an
// admin console or any web page does to call the token-service, with @connectrpc/connect-web.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { TokenService, VerifyResult } from "@latchkey/proto";

/** What the page reports for one Verify call. */
export type PageOutcome = { ok: true; result: string; keyId: string } | { ok: false; code: string };

/** What the page puts on `globalThis` for the test to call (typed without the DOM library). */
export interface PageGlobals {
  verifyFromPage(baseUrl: string, protocol: "connect" | "grpc-web", token: string): Promise<PageOutcome>;
  /** The README's plain `fetch`: the result's JSON name, or the fetch error's name. */
  fetchVerify(baseUrl: string, token: string): Promise<string>;
}

(globalThis as unknown as PageGlobals).verifyFromPage = async (baseUrl, protocol, token) => {
  const transport =
    protocol === "connect" ? createConnectTransport({ baseUrl }) : createGrpcWebTransport({ baseUrl });
  try {
    const response = await createClient(TokenService, transport).verify({ token, requiredScopes: ["read"] });
    return { ok: true, result: VerifyResult[response.result], keyId: response.key?.id ?? "" };
  } catch (error) {
    // A CORS refusal reaches the page as a failed fetch, with no status or body to read.
    return { ok: false, code: Code[ConnectError.from(error).code] };
  }
};

(globalThis as unknown as PageGlobals).fetchVerify = async (baseUrl, token) => {
  try {
    const response = await fetch(`${baseUrl}/latchkey.v1.TokenService/Verify`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token, requiredScopes: ["read"] }),
    });
    const { result } = (await response.json()) as { result: string };
    return result;
  } catch (error) {
    return (error as Error).name;
  }
};
