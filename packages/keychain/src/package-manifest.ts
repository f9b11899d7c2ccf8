import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { packageDigest } from "./package-digest.js";

/** A package's manifest as far as keychains go: `instant.package.json`'s name and `keychain.required`. */
export interface PackageManifest {
  readonly name: string;
  readonly required: readonly { readonly name: string; readonly description: string }[];
}

/** The file a package declares its secrets in (seed 002). */
export const MANIFEST_FILE = "instant.package.json";
const MAX_MANIFEST_BYTES = 1024 * 1024;

/**
 * Reads `instant.package.json` from a package folder: its `name` and the secrets its
 * `keychain.required` declares (each `{ name, description }`). The token-service checks each
 * field again when the version is registered.
 *
 * @example
 * ```ts
 * const manifest = await readPackageManifest("./stripe-customers"); // { name: "@user/package", required: [...] }
 * ```
 * @throws Error naming the file and the field at fault.
 */
export async function readPackageManifest(dir: string): Promise<PackageManifest> {
  const path = join(dir, MANIFEST_FILE);
  const text = await readFile(path, "utf8");
  if (text.length > MAX_MANIFEST_BYTES) throw new Error(`${path} is larger than 1 MiB`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
  const fail = (problem: string) => new Error(`${path}: ${problem}`);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw fail("must hold an object");
  const { name, keychain } = parsed as { name?: unknown; keychain?: unknown };
  if (typeof name !== "string" || name === "") throw fail("name must be a string");
  if (keychain === undefined) return { name, required: [] };
  const required = (keychain as { required?: unknown } | null)?.required;
  if (!Array.isArray(required)) throw fail("keychain.required must be a list");
  return {
    name,
    required: required.map((entry, index) => {
      const { name: secret, description } = (entry ?? {}) as { name?: unknown; description?: unknown };
      if (typeof secret !== "string") throw fail(`keychain.required[${index}].name must be a string`);
      if (description !== undefined && typeof description !== "string") {
        throw fail(`keychain.required[${index}].description must be a string`);
      }
      return { name: secret, description: description ?? "" };
    }),
  };
}

/**
 * The `RegisterPackageVersion` request (as JSON for `buf curl -d @-`) for the package in `dir` at
 * `version`: its manifest's name and declared secrets and the digest of its contents.
 *
 * @example
 * ```ts
 * const request = await packageVersionRequest("./stripe-customers", "v-20250101", { public: true });
 * ```
 */
export async function packageVersionRequest(
  dir: string,
  version: string,
  options: { readonly public: boolean; readonly teamId?: string },
): Promise<{
  teamId?: string;
  packageVersion: {
    name: string;
    version: string;
    public: boolean;
    sha256: string;
    required: PackageManifest["required"];
  };
}> {
  const [manifest, sha256] = await Promise.all([readPackageManifest(dir), packageDigest(dir)]);
  return {
    ...(options.teamId ? { teamId: options.teamId } : {}),
    packageVersion: {
      name: manifest.name,
      version,
      public: options.public,
      sha256,
      required: manifest.required,
    },
  };
}
