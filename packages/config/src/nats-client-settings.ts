import { readFileSync } from "node:fs";
import { z } from "zod";
import { ConfigError } from "./load-config.js";

/**
 * The settings of a service's connection to NATS beyond its URL: which user it is
 * (an nkey seed file, from a Secret) and how it checks the server (TLS). Both
 * services spread these fields into their schemas, so the names and checks exist once.
 *
 * @example
 * ```ts
 * const schema = z.object({ natsUrl: z.string().optional(), ...natsClientSettings }).strict();
 * ```
 */
export const natsClientSettings = {
  // The NATS user's nkey seed (`SU…`), a file mounted from a Secret: who this service is
  // to NATS, and so what it may publish and subscribe to. Unset: no credentials.
  natsNkeySeedFile: z.string().min(1).optional(),
  // CA bundle (PEM) the NATS server's certificate must chain to; set, NATS is TLS only.
  natsTlsCa: z.string().min(1).optional(),
  // Client certificate and key (PEM), for a NATS server that asks for one; set together.
  natsTlsCert: z.string().min(1).optional(),
  natsTlsKey: z.string().min(1).optional(),
};

/** Environment variable of each of {@link natsClientSettings}. */
export const NATS_CLIENT_ENV = {
  natsNkeySeedFile: "LATCHKEY_NATS_NKEY_SEED_FILE",
  natsTlsCa: "LATCHKEY_NATS_TLS_CA",
  natsTlsCert: "LATCHKEY_NATS_TLS_CERT",
  natsTlsKey: "LATCHKEY_NATS_TLS_KEY",
} as const;

/** The parsed values of {@link natsClientSettings}. */
export interface NatsClientSettings {
  readonly natsNkeySeedFile?: string | undefined;
  readonly natsTlsCa?: string | undefined;
  readonly natsTlsCert?: string | undefined;
  readonly natsTlsKey?: string | undefined;
}

/**
 * The cross-field rule of {@link natsClientSettings}, for a schema's `superRefine`:
 * a client certificate and its key come together.
 *
 * @example
 * ```ts
 * const schema = z.object({ ...natsClientSettings }).strict().superRefine(checkNatsClientSettings);
 * ```
 */
export function checkNatsClientSettings(value: NatsClientSettings, ctx: z.RefinementCtx): void {
  if (Boolean(value.natsTlsCert) !== Boolean(value.natsTlsKey)) {
    ctx.addIssue({
      code: "custom",
      path: ["natsTlsCert"],
      message: "natsTlsCert and natsTlsKey must be set together",
    });
  }
}

/** What a NATS client needs from {@link natsClientSettings}: file paths, checked to be usable. */
export interface NatsClientFiles {
  /** The nkey seed file, when the service has NATS credentials. */
  readonly nkeySeedFile?: string;
  /** TLS files, when NATS is reached over TLS. */
  readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string };
}

/** An nkey user seed: `SU` and 56 more base32 characters. */
const USER_SEED = /^SU[A-Z2-7]{56}$/;

/**
 * Checks, at start-up, that the files the NATS settings name can be read and hold
 * what they should (a user nkey seed, PEM), and returns them for the NATS client,
 * which reads them again at every (re)connect so rotated Secrets are picked up.
 * Errors name the environment variable and the path, never the file's contents.
 *
 * @example
 * ```ts
 * const files = checkNatsClientFiles(config); // { nkeySeedFile, tls: { caFile } }
 * createNatsKeyEventBus({ servers: config.natsUrl, ...files });
 * ```
 * @throws ConfigError naming each setting whose file is missing or malformed.
 */
export function checkNatsClientFiles(settings: NatsClientSettings): NatsClientFiles {
  const problems: { setting: string; message: string }[] = [];
  const check = (key: keyof typeof NATS_CLIENT_ENV, valid: (text: string) => boolean, what: string) => {
    const path = settings[key];
    if (path === undefined) return;
    const setting = NATS_CLIENT_ENV[key];
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      problems.push({ setting, message: `cannot read ${path}: ${(error as NodeJS.ErrnoException).code}` });
      return;
    }
    if (!valid(text)) problems.push({ setting, message: `${path} does not hold ${what}` });
  };
  check("natsNkeySeedFile", (text) => USER_SEED.test(text.trim()), "an nkey user seed (SU…)");
  check("natsTlsCa", (text) => text.includes("-----BEGIN CERTIFICATE-----"), "a PEM certificate");
  check("natsTlsCert", (text) => text.includes("-----BEGIN CERTIFICATE-----"), "a PEM certificate");
  check("natsTlsKey", (text) => /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text), "a PEM private key");
  if (problems.length > 0) {
    throw new ConfigError(
      `invalid configuration:\n  ${problems.map((p) => `${p.setting}: ${p.message}`).join("\n  ")}`,
      problems.map((p) => p.setting),
    );
  }
  const { natsNkeySeedFile, natsTlsCa, natsTlsCert, natsTlsKey } = settings;
  const tlsOn = natsTlsCa !== undefined || natsTlsCert !== undefined;
  return {
    ...(natsNkeySeedFile !== undefined ? { nkeySeedFile: natsNkeySeedFile } : {}),
    ...(tlsOn
      ? {
          tls: {
            ...(natsTlsCa !== undefined ? { caFile: natsTlsCa } : {}),
            ...(natsTlsCert !== undefined ? { certFile: natsTlsCert } : {}),
            ...(natsTlsKey !== undefined ? { keyFile: natsTlsKey } : {}),
          },
        }
      : {}),
  };
}
