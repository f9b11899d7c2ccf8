// Test support for keychain tests: master keys, digests, and a keychain with a secret, a registered
// package and a grant, made through the real API.
import { createHash, randomBytes } from "node:crypto";
import type { TestService } from "./start.js";

/** A master key entry `<id>:<32 random bytes, base64>`. */
export function masterKey(id: string): string {
  return `${id}:${randomBytes(32).toString("base64")}`;
}

/** The SHA-256 of `text`, as 64 hex digits: a package version's digest in tests. */
export function digestOf(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** The `audit_log` rows with `action`, oldest first. */
export async function auditRows(
  service: TestService,
  action: string,
): Promise<
  { actor: string; team_id: string | null; key_id: string | null; details: Record<string, unknown> }[]
> {
  const { rows } = await service.sql.query(
    "select actor, team_id, key_id, details from audit_log where action = $1 order by id",
    [action],
  );
  return rows;
}

/** Options of {@link makeKeychain}. */
export interface KeychainSetup {
  readonly teamId: string;
  /** The bearer of the admin calls (root when left out). */
  readonly admin?: string;
  /** Secrets to store, by name. */
  readonly secrets?: Record<string, string>;
}

/** Creates a keychain and stores secrets in it; returns its id, key id and secret. */
export async function makeKeychain(
  service: TestService,
  name: string,
  setup: KeychainSetup,
): Promise<{ id: string; keyId: string; secret: string }> {
  const client = service.keychains(setup.admin);
  const created = await client.createKeychain({ teamId: setup.teamId, name });
  const id = created.keychain?.id ?? "";
  for (const [secretName, value] of Object.entries(setup.secrets ?? {})) {
    await client.putSecret({ keychainId: id, name: secretName, value });
  }
  return { id, keyId: created.keychain?.keyId ?? "", secret: created.secret };
}

/** Registers a package version declaring `required` (public unless told). */
export async function registerPackage(
  service: TestService,
  fields: {
    name: string;
    version: string;
    sha256: string;
    required: string[];
    public?: boolean;
    teamId: string;
  },
  admin?: string,
): Promise<void> {
  await service.keychains(admin).registerPackageVersion({
    teamId: fields.teamId,
    packageVersion: {
      name: fields.name,
      version: fields.version,
      sha256: fields.sha256,
      public: fields.public ?? true,
      required: fields.required.map((name) => ({ name, description: `the package uses ${name}` })),
    },
  });
}
