// A real browser (Debian's chromium, driven by playwright-core) loads a page from one origin that
// calls Verify on the token-service's Connect port, another origin, with @connectrpc/connect-web:
// over the Connect protocol and gRPC-Web, and with the README's plain fetch, through a CORS
// preflight. A page from an origin not in LATCHKEY_CORS_ALLOWED_ORIGINS cannot read the answer.
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { build } from "esbuild";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestService, type TestService } from "../token-service/start.js";
import type { PageGlobals, PageOutcome } from "./verify-page.js";

// `.ci/run` installs Debian's chromium when it is missing; the launcher script sets Debian's flags.
const CHROMIUM = "/usr/bin/chromium";

/** Serves the test page and its bundle on a free port; its origin is the page's origin. */
async function servePage(bundle: string): Promise<{ server: Server; origin: string }> {
  const html = '<!doctype html><meta charset="utf-8"><title>latchkey</title><script src="/page.js"></script>';
  const server = createServer((req, res) => {
    const script = req.url === "/page.js";
    res.writeHead(200, { "content-type": script ? "text/javascript" : "text/html; charset=utf-8" });
    res.end(script ? bundle : html);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

let service: TestService;
let browser: Browser;
/** One page per origin, loaded once: each call is then a function call in that page. */
const pages = new Map<string, Page>();
let allowed: { server: Server; origin: string };
let other: { server: Server; origin: string };
let token: string;
let keyId: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no ${CHROMIUM}: apt-get install -y chromium`);
  const [bundled, launched] = await Promise.all([
    build({
      entryPoints: [new URL("./verify-page.ts", import.meta.url).pathname],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
      conditions: ["@latchkey/source"],
      logLevel: "silent",
    }),
    chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] }),
  ]);
  browser = launched;
  const bundle = bundled.outputFiles[0]?.text ?? "";
  allowed = await servePage(bundle);
  other = await servePage(bundle);
  service = await startTestService({ settings: { corsAllowedOrigins: allowed.origin } });
  const { teamId } = await service.teamWithAdmin("browser");
  const issued = await service.tokens().issue({ teamId, name: "browser-key", scopes: ["read"] });
  token = issued.token;
  keyId = issued.key?.id ?? "";
  for (const { origin } of [allowed, other]) {
    const page = await browser.newPage();
    await page.goto(`${origin}/`);
    pages.set(origin, page);
  }
});

afterAll(async () => {
  await browser?.close();
  await service?.close();
  for (const page of [allowed, other]) page?.server.close();
});

function pageOf(origin: string): Page {
  const page = pages.get(origin);
  if (page === undefined) throw new Error(`no page for ${origin}`);
  return page;
}

function verifyFrom(
  origin: string,
  protocol: "connect" | "grpc-web",
  candidate: string,
): Promise<PageOutcome> {
  return pageOf(origin).evaluate(
    ([baseUrl, protocol, candidate]) =>
      (globalThis as unknown as PageGlobals).verifyFromPage(
        baseUrl,
        protocol as "connect" | "grpc-web",
        candidate,
      ),
    [service.connectUrl, protocol, candidate] as const,
  );
}

function fetchFrom(origin: string, candidate: string): Promise<string> {
  return pageOf(origin).evaluate(
    ([baseUrl, candidate]) => (globalThis as unknown as PageGlobals).fetchVerify(baseUrl, candidate),
    [service.connectUrl, candidate] as const,
  );
}

describe("Verify from a browser page on another origin", () => {
  it.each(["connect", "grpc-web"] as const)("works over %s from an allowed origin", async (protocol) => {
    expect(await verifyFrom(allowed.origin, protocol, token)).toEqual({
      ok: true,
      result: "VALID",
      keyId,
    });
    const typo = `${token.slice(0, -1)}${token.endsWith("x") ? "y" : "x"}`;
    expect(await verifyFrom(allowed.origin, protocol, typo)).toMatchObject({
      ok: true,
      result: "MALFORMED",
    });
  });

  it("works with the README's plain fetch and JSON", async () => {
    expect(await fetchFrom(allowed.origin, token)).toBe("VERIFY_RESULT_VALID");
  });

  it("cannot read the answer from an origin that is not allowed", async () => {
    // The browser's preflight is refused, so fetch fails before the call is sent.
    expect(await verifyFrom(other.origin, "connect", token)).toEqual({ ok: false, code: "Unknown" });
    expect(await fetchFrom(other.origin, token)).toBe("TypeError");
  });
});
