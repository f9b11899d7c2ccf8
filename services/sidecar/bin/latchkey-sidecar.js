#!/usr/bin/env node
// Runs the built entry point (`npm run build` writes dist/); production runs JavaScript, not tsx.
await import("../dist/main.js");
