// @latchkey/verifier as a user gets it: built, packed with `npm pack`, installed from the tarballs into a
// project outside the repository, and run by plain `node` (no tsx, no source condition) against a real
// token-service.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../harness/run-command.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { installedFiles, type PackedProject, packedProject } from "./packed-project.js";

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

let project: PackedProject;
let service: TestService;

beforeAll(async () => {
  project = await packedProject("verifier-user", PACKED, { "verify.mjs": SCRIPT });
  service = await startTestService();
}, 120_000);

afterAll(async () => {
  await service?.close();
  project?.remove();
});

describe("the packed @latchkey/verifier", () => {
  it("installs from its tarballs with its own dependencies, and ships built JavaScript with types only", async () => {
    const { stdout } = await runCommand("npm", ["ls", "--all", "--json"], { cwd: project.dir });
    const tree = JSON.parse(stdout) as { dependencies: Record<string, { resolved?: string }> };
    expect(tree.dependencies["@latchkey/verifier"]?.resolved).toMatch(
      /^file:.*latchkey-verifier-0\.1\.0\.tgz$/,
    );
    const files = installedFiles(project, "@latchkey/verifier");
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
      { cwd: project.dir, env: { NODE_OPTIONS: "" } },
    );
    expect(JSON.parse(stdout)).toEqual({ valid: "VALID", keyId: issued.key?.id, garbage: "MALFORMED" });
  });
});
