#!/usr/bin/env node
// Runs the built command (`npm run build` writes dist/); production runs JavaScript, not tsx.
await import("../dist/cli.js");
