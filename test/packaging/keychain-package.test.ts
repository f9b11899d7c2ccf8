// @latchkey/keychain as a package runtime's author gets it: built, packed, installed from the
// tarballs into a project outside the repository, and run by plain `node` (no tsx, no source
// condition): its context against a real token-service on PostgreSQL, and its command.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../harness/run-command.js";
import { digestOf, makeKeychain, masterKey, registerPackage } from "../token-service/keychain-fixtures.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { installedFiles, type PackedProject, packedProject } from "./packed-project.js";

/** The keychain SDK and the workspace packages it depends on: what a runtime's author installs. */
const PACKED = ["@latchkey/keychain", "@latchkey/proto", "@latchkey/events"];

/** The runtime's script: plain JavaScript that knows nothing of this repository. */
const SCRIPT = `
import { createKeychainContext, createKeychainResolver, KeychainError } from "@latchkey/keychain";

const [tokenService, secret, name, version, sha256] = process.argv.slice(2);
const resolver = createKeychainResolver({ tokenService });
try {
  const context = await createKeychainContext({ resolver, secret, package: { name, version, sha256 } });
  const refused = await createKeychainContext({ resolver, secret, package: { name, version, sha256: "0".repeat(64) } })
    .then(() => "released", (error) => error instanceof KeychainError ? error.reason : String(error));
  console.log(JSON.stringify({ length: context.keychain.key("STRIPE_SECRET_KEY").length, names: context.keychain.names, refused }));
} finally {
  await resolver.close();
}
`;

let project: PackedProject;
let service: TestService;

beforeAll(async () => {
  project = await packedProject("keychain-user", PACKED, {
    "runtime.mjs": SCRIPT,
    "stripe-customers/instant.package.json": JSON.stringify({
      name: "@user/package",
      keychain: { required: [{ name: "STRIPE_SECRET_KEY" }] },
    }),
  });
  service = await startTestService({ settings: { keychainMasterKey: masterKey("packaged") } });
}, 120_000);

afterAll(async () => {
  await service?.close();
  project?.remove();
});

describe("the packed @latchkey/keychain", () => {
  it("ships built JavaScript with types and its command, no sources or tests", () => {
    const files = installedFiles(project, "@latchkey/keychain");
    expect(files).toContain("dist/index.js");
    expect(files).toContain("dist/index.d.ts");
    expect(files).toContain("bin/latchkey-keychain.js");
    expect(files.filter((file) => /\.ts$/.test(file) && !file.endsWith(".d.ts"))).toEqual([]);
    expect(files.filter((file) => /test|tsbuildinfo|examples/.test(file))).toEqual([]);
  });

  it("resolves a keychain's secret for a package from a plain node script, and refuses another digest", async () => {
    const { team } = await service.teams().createTeam({ name: "packaged-keychain" });
    const teamId = team?.id ?? "";
    const sha256 = digestOf("packaged");
    await registerPackage(service, {
      teamId,
      name: "@user/package",
      version: "1.0.0",
      sha256,
      required: ["STRIPE_SECRET_KEY"],
    });
    const keychain = await makeKeychain(service, "packaged", {
      teamId,
      secrets: { STRIPE_SECRET_KEY: "sk_live_packaged_0123" },
    });
    await service.keychains().grantPackage({
      keychainId: keychain.id,
      packageName: "@user/package",
      version: "1.0.0",
      sha256,
      names: ["STRIPE_SECRET_KEY"],
    });
    const { stdout } = await runCommand(
      process.execPath,
      [
        "runtime.mjs",
        `http://127.0.0.1:${service.handle.grpcPort}`,
        keychain.secret,
        "@user/package",
        "1.0.0",
        sha256,
      ],
      { cwd: project.dir, env: { NODE_OPTIONS: "" } },
    );
    expect(JSON.parse(stdout)).toEqual({
      length: 21,
      names: ["STRIPE_SECRET_KEY"],
      refused: "digest_mismatch",
    });
  });

  it("runs its command from the installed bin", async () => {
    const { stdout } = await runCommand(
      "npx",
      ["--no-install", "latchkey-keychain", "register-request", "stripe-customers", "1.0.0"],
      {
        cwd: project.dir,
        env: { NODE_OPTIONS: "" },
      },
    );
    expect(JSON.parse(stdout)).toMatchObject({
      packageVersion: {
        name: "@user/package",
        version: "1.0.0",
        public: true,
        required: [{ name: "STRIPE_SECRET_KEY" }],
      },
    });
  });
});
