// Fails unless everything names the same Node.js: the running process (the Node npm scripts get), the
// pinned `node` devDependency, `engines`, `@types/node` and the container image. Prints the version it
// checked, so a CI log says which Node the tests ran on.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { assertPinnedNode, REPO_ROOT } from "./pinned-node.js";

const problems: string[] = [];
let pinned: { version: string; major: number } | undefined;
try {
  pinned = assertPinnedNode();
} catch (error) {
  problems.push((error as Error).message);
}

if (pinned !== undefined) {
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
    engines?: Record<string, string>;
    devDependencies?: Record<string, string>;
  };
  // engines states the oldest Node we test, which is the pinned one.
  const engines = manifest.engines?.node;
  if (engines !== `>=${pinned.version}`) {
    problems.push(`package.json: engines.node is "${engines}", expected ">=${pinned.version}"`);
  }
  const types = manifest.devDependencies?.["@types/node"] ?? "";
  if (/^\D*(\d+)/.exec(types)?.[1] !== String(pinned.major)) {
    problems.push(`package.json: @types/node is "${types}", expected major ${pinned.major}`);
  }
  const dockerfile = readFileSync(join(REPO_ROOT, "deploy/docker/Dockerfile"), "utf8");
  const image = /^ARG NODE_IMAGE=node:(\d+\.\d+\.\d+)-/m.exec(dockerfile)?.[1];
  if (image !== pinned.version) {
    problems.push(`deploy/docker/Dockerfile: NODE_IMAGE is Node ${image ?? "?"}, expected ${pinned.version}`);
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.error(`check-runtime: ${problem}`);
  process.exit(1);
}
console.log(`Node ${process.versions.node} (pinned ${pinned?.version}) at ${process.execPath}`);
