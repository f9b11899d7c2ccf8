// The shipped example configs (services/sidecar/examples/), loaded by the tests that run them so an
// example that stops working fails a test instead of misleading a reader.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const EXAMPLES = new URL("../../services/sidecar/examples/", import.meta.url);

/** The absolute path of an example file (for `LATCHKEY_POLICY`, `LATCHKEY_RATE_LIMITS`); throws when missing. */
export function examplePath(name: string): string {
  const path = fileURLToPath(new URL(name, EXAMPLES));
  if (!existsSync(path)) throw new Error(`no example named ${name} in services/sidecar/examples/`);
  return path;
}

/** The text of an example file. */
export function exampleText(name: string): string {
  return readFileSync(examplePath(name), "utf8");
}
