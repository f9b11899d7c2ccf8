import { readFileSync } from "node:fs";
import { defineConfig } from "vitest/config";

// Tests on another Node prove nothing about the one we ship: refuse to run them (workers are forked
// from this process, so they run on the same binary). Self-contained rather than importing
// scripts/pinned-node.ts, because the deploy mutation check runs this config from a copy without scripts/.
const pinned: string = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"))
  .devDependencies.node;
if (process.versions.node.split(".")[0] !== pinned.split(".")[0]) {
  throw new Error(
    `running on Node ${process.versions.node} (${process.execPath}), but this repository pins Node ${pinned}: ` +
      "run `npm ci`, then `npm test` or `npx vitest`, which put node_modules/.bin/node first on PATH",
  );
}

// Workspace packages export their built dist/ by default and src/ under the "@latchkey/source"
// condition: tests run on the sources, with no build first. Setting conditions replaces Vite's
// defaults, so these are the defaults with ours in front.
const SOURCE_CONDITION = "@latchkey/source";

export default defineConfig({
  resolve: { conditions: [SOURCE_CONDITION, "module", "node", "development|production"] },
  ssr: { resolve: { conditions: [SOURCE_CONDITION, "module", "node", "development|production"] } },
  test: {
    include: ["packages/**/src/**/*.test.ts", "services/**/src/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "test/bench/**"],
    // One throw-away PostgreSQL and NATS for the run (or DATABASE_URL / NATS_URL when set).
    globalSetup: ["test/harness/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests start servers and child processes; separate processes keep their handles apart.
    pool: "forks",
    // The dev machines and CI have two cores, and the servers under test need some of them.
    maxWorkers: 2,
    // The JSON report is where .ci/run reads the totals from.
    reporters: ["default", "json"],
    outputFile: { json: ".tmp/vitest.json" },
  },
});
