// The console's files as the real token-service serves them on its Connect port: security headers,
// cache headers, the first-load budget, traversal and odd methods over HTTP/1.1 and HTTP/2, and the
// setting that turns the route off. Needs the built console (`npm run build`, which `npm test` runs).
import { existsSync } from "node:fs";
import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_CSP } from "../../services/token-service/src/server/console/console-route.js";
import { send, sendRaw } from "../harness/http-client.js";
import { startTestService, type TestService } from "../token-service/start.js";

/** The first load (index.html, its script and its stylesheet), gzipped, must stay under this. */
const FIRST_LOAD_BUDGET_BYTES = 150 * 1024;

let service: TestService;
let off: TestService;

beforeAll(async () => {
  if (!existsSync(new URL("../../packages/console/dist/index.html", import.meta.url))) {
    throw new Error("the console is not built: run `npm run build` first (npm test does)");
  }
  [service, off] = await Promise.all([
    startTestService(),
    startTestService({ settings: { consoleEnabled: false } }),
  ]);
});

afterAll(async () => {
  await service?.close();
  await off?.close();
});

/** The script and stylesheet index.html loads. */
function referencedAssets(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((match) => match[1] ?? "");
}

/** GET over HTTP/2 with `:path` exactly as given. */
function h2Get(origin: string, path: string, method = "GET"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(origin);
    session.on("error", reject);
    const stream = session.request({ ":method": method, ":path": path });
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on("response", (headers) => {
      status = Number(headers[":status"]);
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      session.close();
      resolve({ status, body: Buffer.concat(chunks).toString() });
    });
    stream.on("error", reject);
    stream.end();
  });
}

describe("the console's files on the Connect port", () => {
  it("send a strict CSP, no framing, nosniff and no referrer", async () => {
    const response = await send(service.connectUrl, "GET", "/console/");
    expect(response.status).toBe(200);
    const csp = String(response.headers["content-security-policy"]);
    expect(csp).toBe(CONSOLE_CSP);
    for (const directive of [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "object-src 'none'",
    ]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(response.headers["x-frame-options"]).toBe("DENY");
    expect(response.headers["x-content-type-options"]).toBe("nosniff");
    expect(response.headers["referrer-policy"]).toBe("no-referrer");
    // No inline script or style in the page itself: everything comes from a file the CSP allows.
    expect(response.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=/i);
  });

  it("revalidate index.html and cache the hashed script and stylesheet for a year", async () => {
    const index = await send(service.connectUrl, "GET", "/console/");
    expect(index.headers["cache-control"]).toBe("no-cache");
    const assets = referencedAssets(index.body);
    expect(assets.some((path) => path.endsWith(".js"))).toBe(true);
    expect(assets.some((path) => path.endsWith(".css"))).toBe(true);
    for (const path of assets) {
      expect(path).toMatch(/-[A-Za-z0-9_-]{8}\.(js|css)$/);
      const asset = await send(service.connectUrl, "GET", path);
      expect(asset.status, path).toBe(200);
      expect(asset.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect(asset.headers["x-content-type-options"]).toBe("nosniff");
    }
  });

  it("keep the first load under 150 KB gzipped", async () => {
    const index = await send(service.connectUrl, "GET", "/console/");
    let total = gzipSync(index.body).length;
    for (const path of referencedAssets(index.body)) {
      total += gzipSync((await send(service.connectUrl, "GET", path)).body, { level: 9 }).length;
    }
    expect(total).toBeGreaterThan(1024);
    expect(total).toBeLessThan(FIRST_LOAD_BUDGET_BYTES);
  });

  it.each([
    "/console/../package.json",
    "/console/%2e%2e/%2e%2e/package.json",
    "/console/..%2f..%2fpackage.json",
    "/console/..\\..\\package.json",
    "/console/assets/..%5c..%5cpackage.json",
    "/console/index.html%00",
    "/console/vite.config.ts",
    "/console/src/main.tsx",
  ])("never serve another file for %s (HTTP/1.1 and HTTP/2)", async (path) => {
    const one = await send(service.connectUrl, "GET", path);
    expect(one.status).toBe(404);
    expect(one.body).not.toContain('"name": "latchkey"');
    const two = await h2Get(service.connectUrl, path);
    expect(two.status).toBe(404);
    expect(two.body).not.toContain('"name": "latchkey"');
  });

  it("refuse a NUL or a backslash request line without serving a file", async () => {
    const nul = await sendRaw(
      service.connectUrl,
      Buffer.from("GET /console/\0/../package.json HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    expect(nul).toMatch(/^HTTP\/1\.1 400/);
    const slash = await sendRaw(
      service.connectUrl,
      Buffer.from("GET /console\\..\\package.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    expect(slash).not.toContain('"name": "latchkey"');
  });

  it("never switch protocols, take an absolute-form target or another spelling for the console", async () => {
    // No tunnel behind an Upgrade: the answer is the file itself, not a 101.
    const upgraded = await sendRaw(
      service.connectUrl,
      Buffer.from("GET /console/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
    );
    expect(upgraded).toMatch(/^HTTP\/1\.1 200 /);
    expect(upgraded).not.toContain(" 101 ");
    for (const target of ["http://evil.example/console/", "//console/", "/CONSOLE/", "/console;/"]) {
      const answer = await sendRaw(
        service.connectUrl,
        Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
      );
      expect(answer, target).toMatch(/^HTTP\/1\.1 404 /);
      expect(answer, target).not.toContain("<!doctype html>");
    }
    const head = await h2Get(service.connectUrl, "/console/nope", "HEAD");
    expect(head).toEqual({ status: 404, body: "" });
  });

  it.each(["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])(
    "answer %s with 405, over both HTTP versions",
    async (method) => {
      const index = await send(service.connectUrl, "GET", "/console/");
      for (const path of ["/console/", ...referencedAssets(index.body)]) {
        const response = await send(
          service.connectUrl,
          method,
          path,
          { "content-type": "application/json", origin: "https://evil.example" },
          "{}",
        );
        expect(response.status, `${method} ${path}`).toBe(405);
        expect(response.headers.allow).toBe("GET, HEAD");
        expect((await h2Get(service.connectUrl, path, method)).status).toBe(405);
      }
    },
  );

  it("leave the RPCs on the same port as they were", async () => {
    const response = await send(
      service.connectUrl,
      "POST",
      "/latchkey.v1.TeamService/ListTeams",
      { "content-type": "application/json" },
      "{}",
    );
    expect(response.status).toBe(401);
  });

  it("share their origin with RPC answers that are never sniffed, though they echo input", async () => {
    // A plain GET a page elsewhere can navigate to; the error echoes the compression name.
    const echoed = await send(
      service.connectUrl,
      "GET",
      `/latchkey.v1.TokenService/List?connect=v1&encoding=json&compression=${encodeURIComponent("<script>x</script>")}&message=%7B%7D`,
    );
    expect(echoed.headers["content-type"]).toBe("application/json");
    expect(echoed.headers["x-content-type-options"]).toBe("nosniff");
    // An answer without a content type at all (an unknown encoding) is not sniffed either.
    const untyped = await send(service.connectUrl, "POST", "/latchkey.v1.TokenService/List", {}, "<html>");
    expect(untyped.headers["content-type"]).toBeUndefined();
    expect(untyped.headers["x-content-type-options"]).toBe("nosniff");
    const refusedPreflight = await send(service.connectUrl, "OPTIONS", "/latchkey.v1.TokenService/List");
    expect(refusedPreflight.headers["x-content-type-options"]).toBe("nosniff");
  });

  it("are not served at all with LATCHKEY_CONSOLE_ENABLED=false", async () => {
    expect(off.handle.console).toBe("off");
    expect(service.handle.console).toBe("served");
    for (const path of ["/console/", "/console", "/console/favicon.svg"]) {
      const response = await send(off.connectUrl, "GET", path);
      expect(response.status, path).toBe(404);
      expect(response.body).not.toContain("<!doctype html>");
      expect(response.headers["content-security-policy"]).toBeUndefined();
    }
  });
});
