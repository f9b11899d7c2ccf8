import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, relative, sep } from "node:path";
import { gzipSync } from "node:zlib";

/** One file of the built console, held in memory with what its response needs. */
export interface ConsoleAsset {
  readonly body: Buffer;
  /** The same bytes gzipped, when that is smaller. */
  readonly gzip: Buffer | undefined;
  readonly contentType: string;
  /** Hashed names (under `assets/`) never change: cached for a year. Anything else is revalidated. */
  readonly cacheControl: string;
  /** A strong validator: the SHA-256 of the body. */
  readonly etag: string;
}

/** The built console: request path (`/console/assets/index-3f9a.js`) → file. Empty when not built. */
export type ConsoleAssets = ReadonlyMap<string, ConsoleAsset>;

/** Where the console is mounted on the Connect port. */
export const CONSOLE_PATH = "/console";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
};

/** The most bytes the console may hold in memory: a sane build is ~200 KB. */
const MAX_TOTAL_BYTES = 16 * 1024 * 1024;

/**
 * The folder `npm run build` writes the console to (`packages/console/dist`), found through the
 * `@latchkey/console` workspace; undefined when that package is not installed beside this one.
 */
export function defaultConsoleDir(): string | undefined {
  try {
    const manifest = createRequire(import.meta.url).resolve("@latchkey/console/package.json");
    return join(dirname(manifest), "dist");
  } catch {
    return undefined;
  }
}

/**
 * Reads the built console into memory once, at start-up: every regular file under `dir` becomes one
 * exact request path, and nothing else is ever served. No path from a request is resolved against
 * the file system, so `..`, encoded dots, backslashes or NUL cannot reach another file: they name
 * no entry of the map. Files added to `dir` later are not served until a restart. A missing `dir`
 * gives an empty map (the route then says to run `npm run build`).
 *
 * @example
 * ```ts
 * const assets = loadConsoleAssets(defaultConsoleDir());
 * assets.get("/console/"); // index.html
 * ```
 */
export function loadConsoleAssets(dir: string | undefined): ConsoleAssets {
  const assets = new Map<string, ConsoleAsset>();
  if (dir === undefined || !existsSync(join(dir, "index.html"))) return assets;
  let total = 0;
  for (const file of listFiles(dir)) {
    const body = readFileSync(file);
    total += body.length;
    if (total > MAX_TOTAL_BYTES) throw new Error(`the console in ${dir} is over ${MAX_TOTAL_BYTES} bytes`);
    const name = relative(dir, file).split(sep).join("/");
    const hashed = name.startsWith("assets/");
    const gzip = gzipSync(body, { level: 9 });
    const asset: ConsoleAsset = {
      body,
      gzip: gzip.length < body.length ? gzip : undefined,
      contentType: CONTENT_TYPES[extname(name)] ?? "application/octet-stream",
      cacheControl: hashed ? "public, max-age=31536000, immutable" : "no-cache",
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
    };
    assets.set(`${CONSOLE_PATH}/${name}`, asset);
    if (name === "index.html") assets.set(`${CONSOLE_PATH}/`, asset);
  }
  return assets;
}

/** Regular files under `dir`, depth first; symbolic links (which could lead anywhere) and anything else are skipped. */
function listFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...listFiles(path));
    else if (entry.isFile()) files.push(path);
  }
  return files;
}
