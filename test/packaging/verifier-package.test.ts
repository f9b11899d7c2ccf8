// @latchkey/verifier as a user gets it: built, packed with `npm pack`, installed from the tarballs into a
// project outside the repository, and run by plain `node` (no tsx, no source condition) against a real
// token-service.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../deploy/render-overlay.js";
import { runCommand } from "../harness/run-command.js";
import { startTestService, type TestService } from "../token-service/start.js";

/** The verifier and the workspace packages it depends on: what a user installs. */
const PACKED = ["@latchkey/verifier", "@latchkey/token", "@latchkey/proto", "@latchkey/events"];

/** The user's script: an ES module of plain JavaScript that knows nothing of this repository. */
const SCRIPT = `
import { createVerifier } from "@latchkey/verifier";

const [address, token] = process.argv.slice(2);
const verifier = createVerifier({ tokenService: address });
try {
  const valid = await verifier.verify(token);
  const garbage = await verifier.verify("not-a-latchkey-key");
  console.log(JSON.stringify({ valid: valid.code, keyId: valid.ok ? valid.key.id : null, garbage: garbage.code }));
} finally {
  await verifier.close();
}
`;

let project: string;
let service: TestService;

beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), "latchkey-verifier-user-"));
  const tarballs = join(project, "tarballs");
  mkdirSync(tarballs);
  // The build is incremental: after `npm run build` (CI does one first) it takes about a second.
  await runCommand("npm", ["run", "--silent", "build"], { cwd: REPO_ROOT });
  await runCommand(
    "npm",
    ["pack", "--silent", "--pack-destination", tarballs, ...PACKED.flatMap((name) => ["--workspace", name])],
    { cwd: REPO_ROOT },
  );
  writeFileSync(
    join(project, "package.json"),
    `${JSON.stringify({ name: "verifier-user", private: true, type: "module" }, null, 2)}\n`,
  );
  writeFileSync(join(project, "verify.mjs"), SCRIPT);
  // Third-party dependencies come from the registry (the npm cache when it has them); ours from the tarballs.
  const files = readdirSync(tarballs).map((file) => join(tarballs, file));
  await runCommand("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", ...files], {
    cwd: project,
  });
  service = await startTestService();
}, 120_000);

afterAll(async () => {
  await service?.close();
  if (project !== undefined) rmSync(project, { recursive: true, force: true });
});

describe("the packed @latchkey/verifier", () => {
  it("installs from its tarballs with its own dependencies, and ships built JavaScript with types only", async () => {
    const { stdout } = await runCommand("npm", ["ls", "--all", "--json"], { cwd: project });
    const tree = JSON.parse(stdout) as { dependencies: Record<string, { resolved?: string }> };
    expect(tree.dependencies["@latchkey/verifier"]?.resolved).toMatch(
      /^file:.*latchkey-verifier-0\.1\.0\.tgz$/,
    );
    const installed = join(project, "node_modules", "@latchkey", "verifier");
    const files = readdirSync(installed, { recursive: true, encoding: "utf8" });
    expect(files).toContain("dist/index.js");
    expect(files).toContain("dist/index.d.ts");
    expect(files.filter((file) => /\.ts$/.test(file) && !file.endsWith(".d.ts"))).toEqual([]);
    expect(files.filter((file) => /test|tsbuildinfo/.test(file))).toEqual([]);
  });

  it("verifies an issued key as VALID and garbage as MALFORMED from a plain node script", async () => {
    const { teamId } = await service.teamWithAdmin("packaging");
    const issued = await service.tokens().issue({ teamId, name: "packaged", scopes: ["read"] });
    const { stdout } = await runCommand(
      process.execPath,
      ["verify.mjs", `http://127.0.0.1:${service.handle.grpcPort}`, issued.token],
      // Nothing of this process's loaders or conditions reaches the user's node.
      { cwd: project, env: { NODE_OPTIONS: "" } },
    );
    expect(JSON.parse(stdout)).toEqual({ valid: "VALID", keyId: issued.key?.id, garbage: "MALFORMED" });
  });
});
