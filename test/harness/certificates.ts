import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "./run-command.js";

/** What a certificate is for: `server` (serverAuth), `client` (clientAuth), or `both`. */
export type CertificateUse = "server" | "client" | "both";

/** Files of a test CA and the certificates it signed. */
export interface TestPki {
  readonly dir: string;
  /** The CA certificate (PEM), what peers trust. */
  readonly caFile: string;
  /**
   * Signs a certificate named `name` (`CN=<name>`) for `subjectAltNames`
   * (`IP:127.0.0.1`, `DNS:localhost`; may be empty for a client), valid for a
   * day from `notBefore` (default now).
   */
  issue(
    name: string,
    subjectAltNames: readonly string[],
    options?: { use?: CertificateUse },
  ): Promise<{ certFile: string; keyFile: string }>;
  dispose(): void;
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
const USAGE: Readonly<Record<CertificateUse, string>> = {
  server: "serverAuth",
  client: "clientAuth",
  both: "serverAuth,clientAuth",
};

async function openssl(dir: string, args: readonly string[]): Promise<void> {
  await runCommand("openssl", args, { cwd: dir });
}

/**
 * A throw-away certificate authority made with openssl (P-256, one day), as
 * cert-manager's CA issuer would make: a self-signed CA, and certificates it
 * signs on demand for servers, clients or both (NATS route TLS with
 * `verify: true` needs both). In its own temporary folder, or in `dir`.
 *
 * @example
 * ```ts
 * const pki = await createTestPki("db");
 * const { certFile, keyFile } = await pki.issue("server", ["IP:127.0.0.1"]);
 * const client = await pki.issue("sidecar", [], { use: "client" });
 * ```
 */
export async function createTestPki(label: string, options: { dir?: string } = {}): Promise<TestPki> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), `latchkey-pki-${label}-`));
  mkdirSync(dir, { recursive: true });
  const caFile = join(dir, "ca.crt");
  await openssl(dir, [
    "req",
    "-x509",
    ...EC,
    "-days",
    "1",
    "-keyout",
    "ca.key",
    "-out",
    caFile,
    "-subj",
    `/CN=${label} test CA`,
  ]);
  return {
    dir,
    caFile,
    async issue(name, subjectAltNames, issueOptions = {}) {
      const certFile = join(dir, `${name}.crt`);
      const keyFile = join(dir, `${name}.key`);
      const lines = [`extendedKeyUsage=${USAGE[issueOptions.use ?? "server"]}`, "basicConstraints=CA:FALSE"];
      if (subjectAltNames.length > 0) lines.unshift(`subjectAltName=${subjectAltNames.join(",")}`);
      writeFileSync(join(dir, `${name}.ext`), `${lines.join("\n")}\n`);
      await openssl(dir, [
        "req",
        "-new",
        ...EC,
        "-keyout",
        keyFile,
        "-out",
        `${name}.csr`,
        "-subj",
        `/CN=${name}`,
      ]);
      await openssl(dir, [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        caFile,
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        `${name}.ext`,
        "-out",
        certFile,
      ]);
      return { certFile, keyFile };
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** PEM files made by {@link createTestCertificates}. */
export interface TestCertificates {
  /** The CA that signed both certificates. */
  readonly caFile: string;
  /** A certificate for 127.0.0.1 and localhost (plus any extra names), usable by servers and as a client. */
  readonly certFile: string;
  readonly keyFile: string;
  /** A client-only certificate (CN client) from the same CA. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

/**
 * What cert-manager would put in a Secret (`ca.crt`, `tls.crt`, `tls.key`),
 * made in `dir` by {@link createTestPki}: a server certificate for loopback
 * that also carries client auth (as NATS route TLS with `verify: true` needs),
 * and a client-only certificate.
 *
 * @example
 * ```ts
 * const certs = await createTestCertificates(dir);
 * connect({ servers, tls: { caFile: certs.caFile } });
 * ```
 */
export async function createTestCertificates(
  dir: string,
  options: { dnsNames?: readonly string[] } = {},
): Promise<TestCertificates> {
  const pki = await createTestPki("latchkey", { dir });
  const names = ["DNS:localhost", "IP:127.0.0.1", ...(options.dnsNames ?? []).map((name) => `DNS:${name}`)];
  const server = await pki.issue("tls", names, { use: "both" });
  const client = await pki.issue("client", [], { use: "client" });
  return {
    caFile: pki.caFile,
    certFile: server.certFile,
    keyFile: server.keyFile,
    clientCertFile: client.certFile,
    clientKeyFile: client.keyFile,
  };
}
