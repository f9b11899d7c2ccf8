import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCommand } from "./run-command.js";

/** PEM files made by {@link createTestCertificates}. */
export interface TestCertificates {
  /** The CA that signed both certificates. */
  readonly caFile: string;
  /** A certificate for 127.0.0.1 and localhost (plus any extra names), usable by servers and as a client. */
  readonly certFile: string;
  readonly keyFile: string;
  /** A client-only certificate (CN latchkey-test-client) from the same CA. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

async function openssl(dir: string, args: readonly string[]): Promise<void> {
  await runCommand("openssl", args, { cwd: dir });
}

/**
 * Makes a throw-away CA and certificates with openssl in `dir`: what cert-manager would
 * put in a Secret (`ca.crt`, `tls.crt`, `tls.key`), for servers on loopback. The server
 * certificate carries both server and client auth, as NATS route TLS with `verify: true`
 * needs.
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
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl(
    dir,
    ["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1"].concat([
      "-subj",
      "/CN=latchkey-test-ca",
    ]),
  );
  const names = ["DNS:localhost", "IP:127.0.0.1", ...(options.dnsNames ?? []).map((name) => `DNS:${name}`)];
  await writeFile(
    join(dir, "server.ext"),
    `subjectAltName=${names.join(",")}\nextendedKeyUsage=serverAuth,clientAuth\n`,
  );
  await writeFile(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, subject] of [
    ["tls", "/CN=latchkey-test-server"],
    ["client", "/CN=latchkey-test-client"],
  ] as const) {
    await openssl(dir, ["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject]);
    const ext = name === "tls" ? "server.ext" : "client.ext";
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      ext,
      "-out",
      `${name}.crt`,
    ]);
  }
  return {
    caFile: join(dir, "ca.crt"),
    certFile: join(dir, "tls.crt"),
    keyFile: join(dir, "tls.key"),
    clientCertFile: join(dir, "client.crt"),
    clientKeyFile: join(dir, "client.key"),
  };
}
