import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Files of a test CA and the server certificates it signed. */
export interface TestPki {
  readonly dir: string;
  /** The CA certificate (PEM), what clients trust. */
  readonly caFile: string;
  /** Signs a server certificate for `subjectAltNames` (`IP:127.0.0.1`, `DNS:localhost`). */
  issue(name: string, subjectAltNames: readonly string[]): { certFile: string; keyFile: string };
  dispose(): void;
}

function openssl(args: readonly string[]): void {
  execFileSync("openssl", args, { stdio: "ignore" });
}

/**
 * A throw-away certificate authority made with openssl (P-256, one day), as
 * cert-manager's CA issuer would make: a self-signed CA, and server
 * certificates it signs on demand.
 *
 * @example
 * ```ts
 * const pki = createTestPki("db");
 * const { certFile, keyFile } = pki.issue("server", ["IP:127.0.0.1"]);
 * ```
 */
export function createTestPki(label: string): TestPki {
  const dir = mkdtempSync(join(tmpdir(), `latchkey-pki-${label}-`));
  const caFile = join(dir, "ca.pem");
  const caKey = join(dir, "ca.key");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl([
    "req",
    "-x509",
    ...ec,
    "-days",
    "1",
    "-keyout",
    caKey,
    "-out",
    caFile,
    "-subj",
    `/CN=${label} test CA`,
  ]);
  return {
    dir,
    caFile,
    issue(name, subjectAltNames) {
      const certFile = join(dir, `${name}.pem`);
      const keyFile = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const extensions = join(dir, `${name}.ext`);
      writeFileSync(
        extensions,
        `subjectAltName=${subjectAltNames.join(",")}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
      );
      openssl(["req", "-new", ...ec, "-keyout", keyFile, "-out", csr, "-subj", `/CN=${name}`]);
      openssl(
        ["x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial", "-days", "1"].concat([
          "-out",
          certFile,
          "-extfile",
          extensions,
        ]),
      );
      return { certFile, keyFile };
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
