import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { grantRequests } from "./keychain-configuration.js";
import { packageDigest } from "./package-digest.js";
import { packageVersionRequest, readPackageManifest } from "./package-manifest.js";

function packageDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-package-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const FILES = {
  "instant.package.json": JSON.stringify({
    name: "@user/package",
    keychain: { required: [{ name: "STRIPE_SECRET_KEY", description: "Your Stripe secret key" }] },
  }),
  "index.js":
    "export default async function (context) { return context.keychain.key('STRIPE_SECRET_KEY').length; }\n",
  "lib/util.js": "export const x = 1;\n",
  "lib/Z.js": "export const z = 1;\n",
};

describe("packageDigest", () => {
  it("is the SHA-256 of the sorted sha256sum listing, as the shell computes it", async () => {
    const dir = packageDir(FILES);
    const shell = execFileSync(
      "sh",
      [
        "-c",
        "find . -type f | cut -c3- | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum | cut -d' ' -f1",
      ],
      { cwd: dir, encoding: "utf8" },
    ).trim();
    expect(await packageDigest(dir)).toBe(shell);
  });

  it("is the same for the same files anywhere, and changes with any byte, name or file", async () => {
    const digest = await packageDigest(packageDir(FILES));
    expect(await packageDigest(packageDir(FILES))).toBe(digest);
    expect(await packageDigest(packageDir({ ...FILES, "index.js": `${FILES["index.js"]} ` }))).not.toBe(
      digest,
    );
    expect(await packageDigest(packageDir({ ...FILES, "extra.js": "" }))).not.toBe(digest);
    const { "lib/Z.js": z, ...withoutZ } = FILES;
    expect(await packageDigest(packageDir({ ...withoutZ, "lib/Y.js": z }))).not.toBe(digest);
  });

  it("refuses a symbolic link", async () => {
    const dir = packageDir(FILES);
    symlinkSync("/etc/passwd", join(dir, "passwd"));
    await expect(packageDigest(dir)).rejects.toThrow(/passwd is not a regular file/);
  });
});

describe("the admin requests made from a package", () => {
  it("register its manifest's name and declared secrets with its digest", async () => {
    const dir = packageDir(FILES);
    expect(await packageVersionRequest(dir, "v-20250101", { public: true })).toEqual({
      packageVersion: {
        name: "@user/package",
        version: "v-20250101",
        public: true,
        sha256: await packageDigest(dir),
        required: [{ name: "STRIPE_SECRET_KEY", description: "Your Stripe secret key" }],
      },
    });
  });

  it.each([
    ["not JSON", "{"],
    ["a list", "[]"],
    ["no name", JSON.stringify({ keychain: { required: [] } })],
    ["required not a list", JSON.stringify({ name: "@a/b", keychain: { required: "STRIPE" } })],
    ["a required entry without a name", JSON.stringify({ name: "@a/b", keychain: { required: [{}] } })],
  ])("refuse a manifest that is %s, naming the file", async (_what, text) => {
    const dir = packageDir({ "instant.package.json": text });
    await expect(readPackageManifest(dir)).rejects.toThrow(/instant\.package\.json/);
  });

  it("grant from the seed's keychain configuration, one request per package", () => {
    const configuration = {
      "@user/package": { version: "v-20250101", sha256: "a".repeat(64), keys: ["STRIPE_SECRET_KEY"] },
    };
    expect(grantRequests(configuration, "kc_1")).toEqual([
      {
        keychainId: "kc_1",
        packageName: "@user/package",
        version: "v-20250101",
        sha256: "a".repeat(64),
        names: ["STRIPE_SECRET_KEY"],
      },
    ]);
    expect(() => grantRequests({ "@a/b": { version: "1", sha256: "x", keys: [1] } }, "kc_1")).toThrow(/keys/);
    expect(() => grantRequests([], "kc_1")).toThrow();
  });
});
