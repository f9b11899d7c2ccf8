import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "./load-config.js";

/** A certificate chain and its private key, read and checked. */
export interface TlsKeyPair {
  /** The chain as read (PEM): the leaf first. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The leaf certificate's subject and SHA-256 fingerprint, for logs. */
  readonly subject: string;
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Outcome of {@link loadTlsKeyPair}: the pair, or which file is at fault and why (never its contents). */
export type TlsKeyPairOutcome =
  | { readonly ok: true; readonly pair: TlsKeyPair }
  | { readonly ok: false; readonly file: "cert" | "key"; readonly problem: string };

/**
 * Reads a PEM certificate chain and private key and checks that they belong
 * together and that the certificate is valid now, so a bad pair is found when
 * it is loaded, not by the first client's handshake. No exception: a reload
 * keeps the pair it has when the new one is bad.
 *
 * @example
 * ```ts
 * const loaded = loadTlsKeyPair("/etc/tls/tls.crt", "/etc/tls/tls.key");
 * if (loaded.ok) server.setSecureContext({ cert: loaded.pair.cert, key: loaded.pair.key });
 * ```
 */
export function loadTlsKeyPair(certFile: string, keyFile: string, now = Date.now()): TlsKeyPairOutcome {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certFile);
  } catch (error) {
    return { ok: false, file: "cert", problem: `cannot read ${certFile}: ${codeOf(error)}` };
  }
  try {
    key = readFileSync(keyFile);
  } catch (error) {
    return { ok: false, file: "key", problem: `cannot read ${keyFile}: ${codeOf(error)}` };
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    return { ok: false, file: "cert", problem: `${certFile} holds no PEM certificate` };
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    return { ok: false, file: "key", problem: `${keyFile} holds no unencrypted PEM private key` };
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    return {
      ok: false,
      file: "key",
      problem: `${keyFile} is not the private key of the certificate in ${certFile}`,
    };
  }
  const notBefore = leaf.validFromDate;
  const notAfter = leaf.validToDate;
  if (notAfter.getTime() <= now) {
    return {
      ok: false,
      file: "cert",
      problem: `the certificate in ${certFile} expired at ${notAfter.toISOString()}`,
    };
  }
  if (notBefore.getTime() > now) {
    return {
      ok: false,
      file: "cert",
      problem: `the certificate in ${certFile} is not valid before ${notBefore.toISOString()}`,
    };
  }
  return {
    ok: true,
    pair: { cert, key, subject: leaf.subject, fingerprint256: leaf.fingerprint256, notBefore, notAfter },
  };
}

/**
 * {@link loadTlsKeyPair} at start-up: a bad pair stops it with a ConfigError
 * naming the setting of the file at fault.
 *
 * @example
 * ```ts
 * const pair = readTlsKeyPair(config.tlsCert, config.tlsKey, ["LATCHKEY_TLS_CERT", "LATCHKEY_TLS_KEY"]);
 * ```
 * @throws ConfigError naming the certificate's or the key's variable.
 */
export function readTlsKeyPair(
  certFile: string,
  keyFile: string,
  variables: readonly [cert: string, key: string],
): TlsKeyPair {
  const loaded = loadTlsKeyPair(certFile, keyFile);
  if (loaded.ok) return loaded.pair;
  const variable = loaded.file === "cert" ? variables[0] : variables[1];
  throw new ConfigError(`${variable}: ${loaded.problem}`, [variable]);
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? "error";
}
