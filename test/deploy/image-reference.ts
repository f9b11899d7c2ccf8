/**
 * Whether an image reference names one image for good: a digest, or a tag that begins
 * with a release version of at least major.minor (`18.6-trixie`, `v1.11.0`, `0.1.0`).
 * Tags that move are not: none (`latest`), a bare major (`node:26`, `26-trixie-slim`),
 * a version that is only the base distribution's (`alpine3.20`), or a word (`stable`).
 * A patch-level tag can still be rebuilt by its publisher (weekly for CloudNativePG's
 * images); a digest is the only byte-for-byte pin, and deploy/README.md says so.
 */
export function isPinned(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const lastSlash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  if (colon <= lastSlash) return false;
  const tag = image.slice(colon + 1);
  return /^v?\d+\.\d+(\.\d+)*([-+_][A-Za-z0-9._-]+)?$/.test(tag);
}
