import { readFileSync } from "node:fs";
import { ConfigError } from "./load-config.js";

/**
 * Reads a PEM file named by a setting, at start-up, and checks it holds at
 * least one `kind` block (`CERTIFICATE` for CA bundles). A missing, unreadable
 * or wrong file stops start-up with a {@link ConfigError} naming the setting;
 * the message never quotes the file's contents.
 *
 * @example
 * ```ts
 * const ca = readPemFile(config.dbCaFile, "LATCHKEY_DB_CA_FILE");
 * ```
 * @throws ConfigError naming `variable`.
 */
export function readPemFile(path: string, variable: string, kind = "CERTIFICATE"): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (error) {
    throw new ConfigError(
      `${variable}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? "error"}`,
      [variable],
    );
  }
  if (!pem.includes(`-----BEGIN ${kind}-----`)) {
    throw new ConfigError(`${variable}: ${path} holds no PEM ${kind}`, [variable]);
  }
  return pem;
}
