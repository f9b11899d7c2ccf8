// A small package runtime, the part of seed 002 that runs packages: each package is served on its
// own subdomain (`@user/package` on `user--package.<domain>`), behind the sidecar. For every
// invocation it measures the package's files (their SHA-256), loads exactly that code, resolves
// the keychain's secrets for that name, version and digest with @latchkey/keychain, and calls the
// package's default export with `context.keychain`. The keychain secret (the caller's Bearer key,
// passed on by the sidecar) is never given to the package's code.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  createKeychainContext,
  KeychainError,
  type KeychainResolver,
  packageDigest,
  readPackageManifest,
} from "@latchkey/keychain";

/** A package folder (with `instant.package.json` and `index.js`) and the version it is published as. */
export interface HostedPackage {
  readonly dir: string;
  readonly version: string;
}

/** Options of {@link startPackageHost}. */
export interface PackageHostOptions {
  readonly packages: readonly HostedPackage[];
  readonly resolver: KeychainResolver;
  /** The parent domain of the packages' subdomains (`pkg.example`). */
  readonly domain: string;
  readonly host?: string;
  readonly port?: number;
}

/** A running package host. */
export interface PackageHost {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

const STATUS: Record<KeychainError["code"], number> = {
  refused: 403,
  unauthenticated: 401,
  not_released: 500,
  corrupt: 502,
  unavailable: 503,
};

/** The subdomain label of a package name: `@user/package` → `user--package`. */
export function packageLabel(name: string): string {
  return name.replace(/^@/, "").replace("/", "--");
}

/**
 * Starts the runtime. A request's `Host` picks the package; `Authorization: Bearer <keychain
 * secret>` is the keychain; the JSON answer is what the package returned, or
 * `{ error: { code, reason, message } }` when the keychain released nothing (403 for a refusal by
 * the keychain's rules, 401 for a secret that is no keychain's).
 *
 * @example
 * ```ts
 * const host = await startPackageHost({ packages: [{ dir, version: "v-20250101" }], resolver, domain: "pkg.example" });
 * ```
 */
export async function startPackageHost(options: PackageHostOptions): Promise<PackageHost> {
  const byLabel = new Map<string, HostedPackage & { readonly name: string }>();
  for (const hosted of options.packages) {
    const { name } = await readPackageManifest(hosted.dir);
    byLabel.set(packageLabel(name), { ...hosted, name });
  }
  const server = createServer((req, res) => {
    invoke(req, res).catch((error: unknown) =>
      answer(res, 500, { error: { code: "internal", message: String(error) } }),
    );
  });

  async function invoke(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const host = (req.headers.host ?? "").replace(/:\d+$/, "");
    const label = host.endsWith(`.${options.domain}`) ? host.slice(0, -options.domain.length - 1) : "";
    const hosted = byLabel.get(label);
    if (hosted === undefined)
      return answer(res, 404, { error: { code: "not_found", message: "no such package" } });
    const secret = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "";
    // What runs is what was measured: the digest of the files now, and the code loaded for that digest.
    const sha256 = await packageDigest(hosted.dir);
    let context: Awaited<ReturnType<typeof createKeychainContext>>;
    try {
      context = await createKeychainContext({
        resolver: options.resolver,
        secret,
        package: { name: hosted.name, version: hosted.version, sha256 },
      });
    } catch (error) {
      if (!(error instanceof KeychainError)) throw error;
      return answer(res, STATUS[error.code], {
        error: { code: error.code, reason: error.reason, message: error.message },
      });
    }
    const module = (await import(`${pathToFileURL(join(hosted.dir, "index.js")).href}?sha256=${sha256}`)) as {
      default: (context: unknown) => Promise<unknown>;
    };
    try {
      answer(res, 200, await module.default(context));
    } catch (error) {
      if (!(error instanceof KeychainError)) throw error;
      answer(res, STATUS[error.code], { error: { code: error.code, message: error.message } });
    }
  }

  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve),
  );
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
