import { defineConfig } from "vitest/config";
import { assertPinnedNode } from "./scripts/pinned-node.js";

// Tests on another Node prove nothing about the one we ship: refuse to run them (workers are forked
// from this process, so they run on the same binary).
assertPinnedNode();

export default defineConfig({
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
