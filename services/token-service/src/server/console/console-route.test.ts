import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send, sendRaw } from "../../../../../test/harness/http-client.js";
import { loadConsoleAssets } from "./console-assets.js";
import { acceptsGzip, CONSOLE_NOT_BUILT, createConsoleRoute, matchesIfNoneMatch } from "./console-route.js";

// A built console in a temporary folder with a secret file beside it (where `..` would lead), served
// by the route on a plain node server; anything the route does not answer gets 418, so a request
// that slips past the route is seen.
let root: string;
let server: Server;
let base: string;
const INDEX = '<!doctype html><script type="module" src="/console/assets/app-1a2b3c.js"></script>';
const APP = `console.log(${JSON.stringify("x".repeat(2000))});`;

async function serve(
  route: ReturnType<typeof createConsoleRoute>,
): Promise<{ server: Server; base: string }> {
  const s = createServer((req, res) => {
    if (!route.handle(req, res)) res.writeHead(418).end("not the console");
  });
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  return { server: s, base: `http://127.0.0.1:${(s.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "latchkey-console-"));
  mkdirSync(join(root, "dist", "assets"), { recursive: true });
  writeFileSync(join(root, "secret.txt"), "TOP-SECRET");
  writeFileSync(join(root, "dist", "index.html"), INDEX);
  writeFileSync(join(root, "dist", "assets", "app-1a2b3c.js"), APP);
  // A link in the build folder to a file outside it is never followed.
  symlinkSync(join(root, "secret.txt"), join(root, "dist", "linked.txt"));
  ({ server, base } = await serve(createConsoleRoute(loadConsoleAssets(join(root, "dist")))));
});

afterAll(() => {
  server?.close();
  rmSync(root, { recursive: true, force: true });
});

describe("the console route", () => {
  it("serves index.html at /console/ (no-cache) and hashed files as immutable, gzipped on request", async () => {
    const index = await send(base, "GET", "/console/");
    expect(index.status).toBe(200);
    expect(index.body).toBe(INDEX);
    expect(index.headers["cache-control"]).toBe("no-cache");
    expect(index.headers["content-type"]).toBe("text/html; charset=utf-8");
    const app = await send(base, "GET", "/console/assets/app-1a2b3c.js");
    expect(app.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(app.body).toBe(APP);
    const zipped = await new Promise<Buffer>((resolve, reject) => {
      import("node:http").then(({ get }) =>
        get(`${base}/console/assets/app-1a2b3c.js`, { headers: { "accept-encoding": "gzip" } }, (res) => {
          expect(res.headers["content-encoding"]).toBe("gzip");
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve(Buffer.concat(chunks)));
        }).on("error", reject),
      );
    });
    expect(gunzipSync(zipped).toString()).toBe(APP);
    const again = await send(base, "GET", "/console/", { "if-none-match": String(index.headers.etag) });
    expect(again.status).toBe(304);
    expect(again.body).toBe("");
  });

  it("redirects /console to /console/ and leaves every other path to the next handler", async () => {
    const bare = await send(base, "GET", "/console");
    expect(bare.status).toBe(308);
    expect(bare.headers.location).toBe("/console/");
    for (const path of ["/", "/consoles", "/latchkey.v1.TokenService/List", "/%63onsole/"]) {
      expect((await send(base, "GET", path)).status, path).toBe(418);
    }
  });

  it.each([
    "/console/../secret.txt",
    "/console/assets/../../secret.txt",
    "/console/%2e%2e/secret.txt",
    "/console/%2E%2E/%2E%2E/secret.txt",
    "/console/..%2fsecret.txt",
    "/console/..%5csecret.txt",
    "/console/..\\secret.txt",
    "/console/assets\\..\\..\\secret.txt",
    "/console/./index.html",
    "/console//index.html",
    "/console/index.html%00.js",
    "/console/assets/",
    "/console/assets",
    "/console/%69ndex.html",
    "/console/linked.txt",
    `/console/${"a/".repeat(2000)}`,
  ])("answers %s with 404 and never another file", async (path) => {
    const response = await send(base, "GET", path);
    expect(response.status).toBe(404);
    expect(response.body).not.toContain("TOP-SECRET");
    expect(response.headers["x-content-type-options"]).toBe("nosniff");
  });

  it("refuses a raw NUL in the path before any file is looked up", async () => {
    const answer = await sendRaw(base, Buffer.from("GET /console/index.html\0 HTTP/1.1\r\nHost: x\r\n\r\n"));
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(answer).not.toContain("TOP-SECRET");
  });

  it.each(["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])(
    "answers %s with 405 and Allow",
    async (method) => {
      for (const path of ["/console/", "/console/assets/app-1a2b3c.js", "/console/nope"]) {
        const response = await send(base, method, path, { "content-type": "text/plain" }, "x");
        expect(response.status, `${method} ${path}`).toBe(405);
        expect(response.headers.allow).toBe("GET, HEAD");
      }
    },
  );

  it("answers HEAD with the headers and no body", async () => {
    const head = await send(base, "HEAD", "/console/");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(Buffer.byteLength(INDEX)));
    expect(head.body).toBe("");
  });

  it("serves only the files present at start: one added later is not served", async () => {
    writeFileSync(join(root, "dist", "later.html"), "late");
    expect((await send(base, "GET", "/console/later.html")).status).toBe(404);
  });

  it("gzips only for a client that takes gzip", () => {
    expect(acceptsGzip("gzip, deflate, br")).toBe(true);
    expect(acceptsGzip("br;q=1.0, gzip;q=0.8")).toBe(true);
    expect(acceptsGzip("*")).toBe(true);
    expect(acceptsGzip(undefined)).toBe(false);
    expect(acceptsGzip("br")).toBe(false);
    expect(acceptsGzip("gzip;q=0")).toBe(false);
    expect(acceptsGzip("gzip;q=0.000, *")).toBe(false);
    expect(acceptsGzip("xgzip, gzipx")).toBe(false);
  });

  it("revalidates a weak copy of the validator, a list holding it, and *", async () => {
    const etag = String((await send(base, "GET", "/console/")).headers.etag);
    for (const header of [`W/${etag}`, `"nope", ${etag}`, `"a",W/${etag} , "b"`, "*"]) {
      const response = await send(base, "GET", "/console/", { "if-none-match": header });
      expect(response.status, header).toBe(304);
      expect(response.headers.etag).toBe(etag);
      expect(response.headers.vary).toBe("Accept-Encoding");
      expect(response.body).toBe("");
    }
    expect(matchesIfNoneMatch([`"x"`, etag], etag)).toBe(true);
    expect(matchesIfNoneMatch(`${etag.slice(0, -1)}x"`, etag)).toBe(false);
    expect(matchesIfNoneMatch(`w/${etag}`, etag)).toBe(false);
  });

  it("answers a stale or foreign validator with the file", async () => {
    for (const etag of ['"nope"', 'W/"x"', "*x", "", ", ,", '"nope", W/"x"']) {
      const response = await send(base, "GET", "/console/", { "if-none-match": etag });
      expect(response.status, etag).toBe(200);
      expect(response.body).toBe(INDEX);
    }
  });

  it("says to run npm run build when the console was never built", async () => {
    const missing = await serve(createConsoleRoute(loadConsoleAssets(join(root, "no-such-dist"))));
    try {
      const response = await send(missing.base, "GET", "/console/");
      expect(response.status).toBe(503);
      expect(response.body).toBe(CONSOLE_NOT_BUILT);
      expect(response.body).toContain("npm run build");
      expect(response.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    } finally {
      missing.server.close();
    }
  });
});
