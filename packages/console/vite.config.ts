import { fileURLToPath } from "node:url";
import { defaultClientConditions, defineConfig } from "vite";

// The admin console's build: `npm run build` runs it after `tsc -b`. The output (dist/) is a fixed
// set of files the token-service reads once at start-up and serves under /console/: index.html, and
// JS and CSS with content hashes in their names (served as immutable).
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/console/",
  // Workspace packages (@latchkey/proto) are read from their sources, as the tests do: no build order.
  resolve: { conditions: ["@latchkey/source", ...defaultClientConditions] },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Every byte is served from the token-service's memory; no source maps in the shipped set.
    sourcemap: false,
    // No inline data: URLs, so the Content-Security-Policy needs no data: sources.
    assetsInlineLimit: 0,
    // Vite's preload polyfill is for browsers without modulepreload; the console targets current ones.
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  logLevel: "warn",
});
