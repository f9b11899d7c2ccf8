import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { loadConfig } from "./load-config.js";
import {
  checkNatsClientFiles,
  checkNatsClientSettings,
  NATS_CLIENT_ENV,
  natsClientSettings,
} from "./nats-client-settings.js";

const dir = mkdtempSync(join(tmpdir(), "lk-nats-settings-"));
function file(name: string, contents: string): string {
  const path = join(dir, name);
  writeFileSync(path, contents);
  return path;
}
// Made with nkeys.createUser(); a seed for tests only.
const SEED = "SUAJ5FNSAI6SWL5IQWNWVJVWXDQPWKIHD3TE2WDDDNYAFJ6G5HONFO4PMM";
const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

describe("NATS client settings", () => {
  it("returns the files for the NATS client, TLS on when a CA or client certificate is set", () => {
    const seed = file("seed", `${SEED}\n`);
    const ca = file("ca.crt", CERT);
    expect(checkNatsClientFiles({})).toEqual({});
    expect(checkNatsClientFiles({ natsNkeySeedFile: seed, natsTlsCa: ca })).toEqual({
      nkeySeedFile: seed,
      tls: { caFile: ca },
    });
  });

  it("stops start-up naming the setting whose file is missing or holds the wrong thing, never its contents", () => {
    const notASeed = file("not-a-seed", "SUPERSECRETPASSWORD");
    let message = "";
    try {
      checkNatsClientFiles({
        natsNkeySeedFile: notASeed,
        natsTlsCa: join(dir, "missing.crt"),
        natsTlsKey: file("k", CERT),
      });
    } catch (error) {
      message = (error as Error).message;
      expect((error as { settings: string[] }).settings).toEqual([
        "LATCHKEY_NATS_NKEY_SEED_FILE",
        "LATCHKEY_NATS_TLS_CA",
        "LATCHKEY_NATS_TLS_KEY",
      ]);
    }
    expect(message).toMatch(/LATCHKEY_NATS_NKEY_SEED_FILE: .*not-a-seed does not hold an nkey user seed/);
    expect(message).toMatch(/LATCHKEY_NATS_TLS_CA: cannot read .*missing\.crt: ENOENT/);
    expect(message).not.toContain("SUPERSECRETPASSWORD");
    const [certFile, keyFile] = [file("c", CERT), file("key", KEY)];
    expect(checkNatsClientFiles({ natsTlsCert: certFile, natsTlsKey: keyFile })).toEqual({
      tls: { certFile, keyFile },
    });
  });

  it("refuses a client certificate without its key, naming the variable", () => {
    const schema = z
      .object({ ...natsClientSettings })
      .strict()
      .superRefine(checkNatsClientSettings);
    expect(() =>
      loadConfig({ schema, env: NATS_CLIENT_ENV, source: { LATCHKEY_NATS_TLS_CERT: "/c.pem" } }),
    ).toThrow(/LATCHKEY_NATS_TLS_CERT: natsTlsCert and natsTlsKey must be set together/);
  });
});
