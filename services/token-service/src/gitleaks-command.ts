import { readFileSync } from "node:fs";
import { ConfigError } from "@latchkey/config";
import { createKeyFormats, gitleaksRules, KeyFormatConfigError } from "@latchkey/token";
import { keyFormatsOf, loadTokenServiceConfig } from "./config.js";

/**
 * `latchkey-token-service gitleaks-rules [formats-file]`: the gitleaks rule
 * file (TOML) for the deployment's `keyFormats`, or for the list in a JSON
 * file (a JSON list, so rules can be made where the signing keys are not at hand).
 *
 * @throws ConfigError naming the file or the setting at fault.
 * @example
 * ```ts
 * process.stdout.write(gitleaksRulesCommand("deploy/gitleaks/seed-key-formats.json"));
 * ```
 */
export function gitleaksRulesCommand(formatsFile?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (formatsFile === undefined) return gitleaksRules(keyFormatsOf(loadTokenServiceConfig(env)));
  let specs: unknown;
  try {
    specs = JSON.parse(readFileSync(formatsFile, "utf8"));
  } catch (error) {
    throw new ConfigError(`${formatsFile}: cannot read a format list: ${(error as Error).message}`, [
      formatsFile,
    ]);
  }
  try {
    return gitleaksRules(createKeyFormats({ formats: specs }));
  } catch (error) {
    if (error instanceof KeyFormatConfigError)
      throw new ConfigError(`${formatsFile}: ${error.message}`, [formatsFile]);
    throw error;
  }
}
