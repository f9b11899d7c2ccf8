import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

const MAX_FILES = 100_000;

/**
 * The SHA-256 of a package's contents: two packages with the same files (paths and bytes) have the
 * same digest, and any changed, added or removed file changes it. It is the SHA-256 of the
 * `sha256sum` listing of every regular file, sorted by path, so it can be checked by hand:
 *
 * ```sh
 * cd pkg && find . -type f | cut -c3- | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum
 * ```
 *
 * Symbolic links, sockets and other special files are refused (a link could point anywhere), as
 * are paths with a line break. On Kubernetes the image digest plays this part (see the README).
 *
 * @example
 * ```ts
 * const sha256 = await packageDigest("./packages/stripe-customers"); // 64 hex digits
 * ```
 * @throws Error naming the path at fault.
 */
export async function packageDigest(dir: string): Promise<string> {
  const files: string[] = [];
  await collect(dir, "", files);
  files.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const listing = createHash("sha256");
  for (const path of files) listing.update(`${await fileDigest(join(dir, path))}  ${path}\n`);
  return listing.digest("hex");
}

async function collect(root: string, prefix: string, files: string[]): Promise<void> {
  const entries = await readdir(join(root, prefix), { withFileTypes: true });
  for (const entry of entries) {
    const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (/[\n\r]/.test(path))
      throw new Error(`package file ${JSON.stringify(path)} has a line break in its name`);
    const stats = await lstat(join(root, path));
    if (stats.isDirectory()) await collect(root, path, files);
    else if (stats.isFile()) {
      files.push(path);
      if (files.length > MAX_FILES) throw new Error(`package ${root} has more than ${MAX_FILES} files`);
    } else throw new Error(`package file ${path} is not a regular file or directory (a link?)`);
  }
}

function fileDigest(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}
